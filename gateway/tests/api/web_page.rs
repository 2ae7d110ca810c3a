//! The owner dashboard page at /dashboard, served from the binary and checked in a real
//! headless Chromium: it signs in, opens a hotel's year, and shows the API's numbers.

use crate::dashboard::hotel;
use crate::helpers::{session, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

#[actix_web::test]
async fn the_page_and_its_bundled_assets_are_served() {
    let app = spawn_app().await;
    let res = app.http.get(format!("{}/dashboard", app.addr)).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap_or("").starts_with("text/html"));
    let html = res.text().await.expect("html");
    assert!(html.contains("/dashboard/assets/chart.umd.min.js") && html.contains("id=\"figures\""), "{html}");
    for (name, needle) in [
        ("chart.umd.min.js", "Chart.js v4.6.1"),
        ("chart.js-LICENSE.md", "MIT License"),
        ("dashboard.js", "/dashboard/summary"),
        ("dashboard.css", "table"),
    ] {
        let res = app.http.get(format!("{}/dashboard/assets/{name}", app.addr)).send().await.expect("send");
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert!(res.text().await.expect("body").contains(needle), "{name}");
    }
    let res = app.http.get(format!("{}/dashboard/assets/../../Cargo.toml", app.addr)).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

fn chromium() -> String {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("this test needs Chromium: apt-get install chromium"))
}

/// Runs headless Chromium on `url` (off the async runtime, so the app keeps serving).
async fn browse(url: String, extra: Vec<String>) -> String {
    let bin = chromium();
    let profile = std::env::temp_dir().join(format!("chromium-{}", uuid::Uuid::now_v7()));
    let out = actix_web::rt::task::spawn_blocking(move || {
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--user-data-dir={}", profile.display()),
            "--virtual-time-budget=20000".to_owned(),
        ];
        args.extend(extra);
        args.push(url);
        let out = std::process::Command::new(bin).args(&args).output();
        let _ = std::fs::remove_dir_all(&profile);
        out
    })
    .await
    .expect("join")
    .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number in the `class` cell of the table row of `date`, as the page rendered it.
fn cell(dom: &str, date: &str, class: &str) -> Option<i64> {
    let row = &dom[dom.find(&format!("data-date=\"{date}\""))?..];
    let row = &row[..row.find("</tr>")?];
    let v = &row[row.find(&format!("class=\"{class}\">"))? + class.len() + 9..];
    v[..v.find('<')?].trim().parse().ok()
}

#[actix_web::test]
async fn in_chromium_the_page_signs_in_and_shows_the_apis_numbers() {
    let app = spawn_app().await;
    let email = format!("page-{}@example.com", uuid::Uuid::now_v7().simple());
    let password = "a long password";
    let (st, v) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": email, "password": password, "name": "Page", "role": "owner"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let owner = session(&v);
    let (h, _) = hotel(&app, &owner, "Page Hotel").await;
    let ev = |ts: &str, status: u8, room: u32, night: &str| json!({"hotel_id": h, "timestamp": ts, "rpg_status": status, "room_id": room, "night_of_stay": night});
    let feed = json!([
        ev("2028-01-02T10:00:00Z", 1, 101, "2028-01-31"),
        ev("2028-01-02T10:00:01Z", 1, 101, "2028-02-29"),
        ev("2028-01-02T10:00:02Z", 1, 102, "2028-02-29"),
        ev("2028-01-02T10:00:03Z", 1, 201, "2028-03-01"),
        ev("2028-01-02T10:00:04Z", 2, 102, "2028-02-29"),
    ]);
    let (st, v) = app.post("/api/v1/ingest", Some(&owner.token), feed).await;
    assert_eq!((st, v["rejected"].as_u64()), (StatusCode::OK, Some(0)), "{v}");
    let (_, booked) =
        app.get(&format!("/api/v1/resources/{h}/dashboard?year=2028&period=month"), Some(&owner.token)).await;
    let (_, cancelled) = app
        .get(&format!("/api/v1/resources/{h}/dashboard?year=2028&period=month&series=cancelled"), Some(&owner.token))
        .await;

    let enc = |s: &str| s.replace('@', "%40").replace(' ', "%20");
    let url = format!(
        "{}/dashboard#email={}&password={}&resource={h}&year=2028&period=month",
        app.addr,
        enc(&email),
        enc(password)
    );
    let dom = browse(url.clone(), vec!["--dump-dom".to_owned()]).await;
    assert!(dom.contains("data-state=\"ready\""), "the page did not finish loading:\n{dom}");
    let months = booked.as_object().expect("object");
    assert_eq!(months.len(), 12);
    for (date, n) in months {
        assert_eq!(cell(&dom, date, "booked"), n.as_i64(), "booked on {date}");
        assert_eq!(cell(&dom, date, "cancelled"), cancelled[date].as_i64(), "cancelled on {date}");
    }
    assert_eq!((cell(&dom, "2028-02-01", "booked"), cell(&dom, "2028-02-01", "cancelled")), (Some(1), Some(1)));
    assert!(dom.contains("data-booked=\"3\""), "the totals line shows the year's 3 room-nights");
    assert!(dom.contains("2028-02-29 → 2028-03-01"), "recent bookings are listed");

    // A screenshot for people to look at.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    browse(url, vec![format!("--screenshot={}", shot.display()), "--window-size=1280,1400".to_owned()]).await;
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}
