use crate::helpers::{code, session, spawn_app, spawn_with};
use gateway::configuration::Secret;
use reqwest::StatusCode;
use serde_json::json;

#[actix_web::test]
async fn register_login_me() {
    let app = spawn_app().await;
    let body = json!({"email": "Ada@Example.com", "password": "correct horse battery", "name": "Ada"});
    let (st, v) = app.post("/api/v1/auth/register", None, body.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["user"]["role"], "client");
    assert_eq!(v["user"]["email"], "ada@example.com", "emails are stored lower-cased");
    let (st, v) = app.post("/api/v1/auth/register", None, body).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "email_taken"));

    let (st, v) = app
        .post("/api/v1/auth/login", None, json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let s = session(&v);
    let (st, me) = app.get("/api/v1/auth/me", Some(&s.token)).await;
    assert_eq!((st, me["name"].as_str()), (StatusCode::OK, Some("Ada")));

    let (st, v) =
        app.post("/api/v1/auth/login", None, json!({"email": "ada@example.com", "password": "wrong password!"})).await;
    assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (st, _) = app
        .post("/api/v1/auth/login", None, json!({"email": "nobody@example.com", "password": "whatever it is"}))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = app.get("/api/v1/auth/me", Some("not.a.jwt")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = app.get("/api/v1/auth/me", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn registration_refuses_admins_and_weak_input_field_by_field() {
    let app = spawn_app().await;
    let (st, v) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "not-an-email", "password": "short", "name": " ", "role": "admin"}),
        )
        .await;
    assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let fields: Vec<&str> =
        v["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    for f in ["email", "password", "name", "role"] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
}

#[actix_web::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let first = app.register("client").await;
    let (st, v) = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": first.refresh})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let second = session(&v);
    assert_ne!(second.refresh, first.refresh, "refresh tokens rotate");
    // Someone replays the first (rotated) token: the whole family is revoked...
    let (st, v) = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": first.refresh})).await;
    assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, "refresh_token_reused"));
    // ...including the token the legitimate client holds now.
    let (st, _) = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": second.refresh})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": "garbage"})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn logout_revokes_the_refresh_token() {
    let app = spawn_app().await;
    let s = app.register("client").await;
    let (st, _) = app.post("/api/v1/auth/logout", None, json!({"refresh_token": s.refresh})).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": s.refresh})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn the_admin_is_created_from_the_environment_once() {
    let app = spawn_with(|s| {
        s.admin_email = Some("root@example.com".into());
        s.admin_password = Some(Secret::new("admin password 123"));
    })
    .await;
    let (st, v) = app
        .post("/api/v1/auth/login", None, json!({"email": "root@example.com", "password": "admin password 123"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["role"], "admin");
}
