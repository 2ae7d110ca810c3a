//! An HTTP flash sale: 500 concurrent clients, 50 tickets.

use crate::helpers::spawn_app;
use futures::future::join_all;
use reqwest::StatusCode;
use std::collections::BTreeSet;

#[actix_web::test]
async fn five_hundred_clients_fifty_tickets() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(app.register("client").await);
    }
    let event = app.create_event(&owner, 50).await;
    let results = join_all((0..500).map(|i| {
        let c = &clients[i % clients.len()];
        let app = &app;
        let event = event.as_str();
        async move { app.book(c, event, 1, true).await }
    }))
    .await;
    let ok: BTreeSet<String> = results
        .iter()
        .filter(|(st, _)| *st == StatusCode::CREATED)
        .map(|(_, v)| v["id"].as_str().expect("id").to_owned())
        .collect();
    let sold_out = results.iter().filter(|(st, v)| *st == StatusCode::CONFLICT && v["code"] == "sold_out").count();
    assert_eq!(ok.len(), 50, "exactly the capacity is sold");
    assert_eq!(sold_out, 450, "everyone else hears sold_out");
    let c = app.db.client().await;
    let rows: BTreeSet<String> = c
        .query(
            "SELECT id::text FROM bookings WHERE resource_id = $1::text::uuid AND status IN ('held', 'confirmed')",
            &[&event],
        )
        .await
        .expect("query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, ok, "Postgres holds exactly the 50 acknowledged bookings");
}
