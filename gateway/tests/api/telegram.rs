//! The Telegram bot, driven through teloxide_tests' fake Bot API (offline, on 127.0.0.1)
//! against the real server state and PostgreSQL (a fresh database per test). Buttons are
//! pressed with the callback data of the keyboards the bot actually sent.

use crate::helpers::{Session, TestApp};
use actix_web::web;
use bots::delivery::{DeliveryConfig, Notifier};
use bots::telegram::dialogue::HandlerError;
use bots::telegram::{self, Backend, State, TelegramChannel};
use engine::SystemClock;
use engine::domain::ids::UserId;
use engine::fixtures;
use engine::store::postgres::{PgConfig, PgStore};
use engine::testing::TestDb;
use gateway::configuration::{Secret, Settings};
use gateway::startup::Application;
use gateway::state::AppState;
use gateway::telegram::GatewayBackend;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use teloxide::dispatching::UpdateHandler;
use teloxide::dispatching::dialogue::ErasedStorage;
use teloxide::prelude::*;
use teloxide::types::InlineKeyboardButtonKind;
use teloxide_tests::{MockBot, MockCallbackQuery, MockMessageText};

/// A message the test tree answers by running one pass of a notifier with the Telegram
/// channel (the fake Bot API only listens while an update is dispatched).
const DELIVER: &str = "__deliver_notifications__";

#[derive(Clone)]
struct DbUrl(String);

struct Harness {
    app: TestApp,
    state: web::Data<AppState>,
}

async fn spawn() -> Harness {
    let db = TestDb::new();
    let mut s = Settings::local();
    s.database_url = Some(Secret::new(&db.url));
    s.db_pool_size = 8;
    // The server's own notifier polls rarely: the test delivers with the Telegram channel.
    s.delivery_poll_ms = 60_000;
    s.payment_simulator_delay_ms = 50;
    let app = Application::build(s).await.expect("the app starts");
    let state = app.state();
    let addr = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder().build().expect("client");
    Harness { app: TestApp { addr, http, db }, state }
}

async fn deliver_pass(bot: Bot, db: DbUrl) -> Result<(), HandlerError> {
    let mut cfg = PgConfig::new(&db.0);
    cfg.pool_size = 2;
    let pg = PgStore::connect(&cfg).await?;
    let channel = Arc::new(TelegramChannel::new(bot));
    let notifier = Notifier::new(pg, Arc::new(SystemClock), vec![channel], DeliveryConfig::default());
    notifier.run_once().await?;
    Ok(())
}

fn tree() -> UpdateHandler<HandlerError> {
    dptree::entry()
        .branch(Update::filter_message().filter(|m: Message| m.text() == Some(DELIVER)).endpoint(deliver_pass))
        .branch(telegram::schema())
}

impl Harness {
    /// A bot as the server would run it: its backend and a dialogue storage with a pool of
    /// its own (as after a restart).
    async fn bot(&self) -> MockBot<HandlerError, teloxide_tests::mock_bot::DistributionKey> {
        let backend: Arc<dyn Backend> = Arc::new(GatewayBackend::new(self.state.clone()));
        let mut cfg = PgConfig::new(&self.app.db.url);
        cfg.pool_size = 2;
        let pool = PgStore::connect(&cfg).await.expect("pool").pool().clone();
        let storage: Arc<ErasedStorage<State>> = telegram::storage::storage(Some(pool));
        let mut bot = MockBot::new(MockMessageText::new().text("/help"), tree());
        let mut deps = telegram::dependencies(backend, storage);
        deps.insert(DbUrl(self.app.db.url.clone()));
        bot.dependencies(deps);
        bot
    }

    async fn owner_with(&self, name: &str, kind: Value) -> (Session, String) {
        let owner = self.app.register("owner").await;
        let id = self.app.create_resource(&owner, name, kind).await;
        (owner, id)
    }

    async fn booking_status(&self, booking: &str) -> String {
        let id = uuid::Uuid::parse_str(booking).expect("booking id");
        let row = self
            .app
            .db
            .client()
            .await
            .query_one("SELECT status FROM bookings WHERE id = $1", &[&id])
            .await
            .expect("the booking is in the database");
        row.get(0)
    }

    async fn wait_for_status(&self, booking: &str, want: &str) {
        for _ in 0..100 {
            if self.booking_status(booking).await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("booking {booking} never became {want}; it is {}", self.booking_status(booking).await);
    }
}

type TestBot = MockBot<HandlerError, teloxide_tests::mock_bot::DistributionKey>;

/// Sends a text as the user; returns the texts the bot sent back.
async fn say(bot: &mut TestBot, text: &str) -> Vec<String> {
    bot.update(MockMessageText::new().text(text));
    bot.dispatch().await;
    texts(bot)
}

/// Presses a button with `data`; returns the texts the bot sent back.
async fn press(bot: &mut TestBot, data: &str) -> Vec<String> {
    bot.update(MockCallbackQuery::new().data(data));
    bot.dispatch().await;
    let r = bot.get_responses();
    assert!(!r.answered_callback_queries.is_empty(), "the button press was not answered");
    texts(bot)
}

fn texts(bot: &TestBot) -> Vec<String> {
    bot.get_responses().sent_messages.iter().filter_map(|m| m.text().map(str::to_owned)).collect()
}

/// (label, callback data) of every button in what the bot last sent.
fn buttons(bot: &TestBot) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in bot.get_responses().sent_messages {
        if let Some(kb) = m.reply_markup() {
            for row in &kb.inline_keyboard {
                for b in row {
                    if let InlineKeyboardButtonKind::CallbackData(d) = &b.kind {
                        out.push((b.text.clone(), d.clone()));
                    }
                }
            }
        }
    }
    out
}

fn button_with(bot: &TestBot, prefix: &str) -> String {
    let all = buttons(bot);
    all.iter()
        .find(|(_, d)| d.starts_with(prefix))
        .map(|(_, d)| d.clone())
        .unwrap_or_else(|| panic!("no button {prefix}… among {all:?}"))
}

fn one(texts: &[String]) -> &str {
    assert_eq!(texts.len(), 1, "expected one answer, got {texts:?}");
    &texts[0]
}

/// The booking id in a `pay:`/`cx:` button's data.
fn id_of(data: &str) -> String {
    let (_, simple) = data.split_once(':').expect("verb:id");
    uuid::Uuid::parse_str(simple).expect("uuid").to_string()
}

fn today() -> jiff::civil::Date {
    jiff::Zoned::now().date()
}

async fn link_code(app: &TestApp, s: &Session) -> String {
    let (st, v) = app.post("/api/v1/me/telegram/link-code", Some(&s.token), json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert!(v["expires_at"].is_string(), "{v}");
    v["code"].as_str().expect("code").to_owned()
}

async fn linked_user(app: &TestApp, chat: i64) -> Option<uuid::Uuid> {
    app.db
        .client()
        .await
        .query_opt("SELECT user_id FROM telegram_links WHERE chat_id = $1", &[&chat])
        .await
        .expect("query")
        .map(|r| r.get(0))
}

const CHAT: i64 = teloxide_tests::MockUser::ID as i64;

#[actix_web::test]
async fn a_one_time_code_from_the_api_links_the_chat_to_the_account() {
    let h = spawn().await;
    let client = h.app.register("client").await;
    let code = link_code(&h.app, &client).await;
    let mut bot = h.bot().await;

    let before = say(&mut bot, "/start").await;
    assert!(one(&before).contains("/link"), "{before:?}");
    assert_eq!(linked_user(&h.app, CHAT).await, None);

    let got = say(&mut bot, &format!("/start {code}")).await;
    assert!(one(&got).starts_with("Linked"), "{got:?}");
    assert_eq!(linked_user(&h.app, CHAT).await.map(|u| u.to_string()), Some(client.user_id.clone()));
    let stored: i64 = h
        .app
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM telegram_link_codes WHERE code_hash = $1", &[&code])
        .await
        .expect("query")
        .get(0);
    assert_eq!(stored, 0, "the code itself is never stored, only its hash");

    // Single use.
    let again = say(&mut bot, &format!("/link {code}")).await;
    assert!(one(&again).contains("unknown, used or expired"), "{again:?}");

    // An expired code is refused with the way out.
    let other = h.app.register("client").await;
    let late = link_code(&h.app, &other).await;
    h.app
        .db
        .client()
        .await
        .execute("UPDATE telegram_link_codes SET expires_at = now() - interval '1 minute' WHERE used_at IS NULL", &[])
        .await
        .expect("expire");
    let expired = say(&mut bot, &format!("/link {late}")).await;
    assert!(one(&expired).contains("expired"), "{expired:?}");
    assert_eq!(linked_user(&h.app, CHAT).await.map(|u| u.to_string()), Some(client.user_id.clone()));

    let welcome = say(&mut bot, "/start").await;
    assert!(one(&welcome).starts_with("Welcome back, Test User"), "{welcome:?}");
}

#[actix_web::test]
async fn register_creates_a_client_account_for_the_telegram_user() {
    let h = spawn().await;
    let mut bot = h.bot().await;
    let got = say(&mut bot, "/register").await;
    assert!(one(&got).starts_with("Done"), "{got:?}");
    let row = h
        .app
        .db
        .client()
        .await
        .query_one(
            "SELECT u.email, u.role, u.name FROM users u JOIN telegram_links t ON t.user_id = u.id WHERE t.chat_id = $1",
            &[&CHAT],
        )
        .await
        .expect("a linked account");
    let (email, role, name): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(email, format!("telegram-{}@telegram.invalid", teloxide_tests::MockUser::ID));
    assert_eq!(role, "client");
    assert!(name.starts_with(teloxide_tests::MockUser::FIRST_NAME), "the Telegram name: {name}");

    let twice = say(&mut bot, "/register").await;
    assert!(one(&twice).contains("already linked"), "{twice:?}");
}

#[actix_web::test]
async fn a_hotel_stay_is_searched_held_paid_and_confirmed_in_the_chat() {
    let h = spawn().await;
    let kind =
        serde_json::to_value(fixtures::hotel(UserId::new_v7(), "Hotel Tejo", "Lisbon", 2, 1).kind).expect("json");
    h.owner_with("Hotel Tejo", kind).await;
    let mut bot = h.bot().await;
    say(&mut bot, "/register").await;

    assert_eq!(one(&say(&mut bot, "/hotels").await), "Which city?");
    let ask_dates = say(&mut bot, "Lisbon").await;
    assert!(one(&ask_dates).contains("which dates"), "{ask_dates:?}");
    let (ci, co) = (today() + jiff::Span::new().days(30), today() + jiff::Span::new().days(32));
    let ask_guests = say(&mut bot, &format!("{ci} {co}")).await;
    assert!(one(&ask_guests).contains("How many guests"), "{ask_guests:?}");
    let results = say(&mut bot, "2").await;
    let list = one(&results);
    assert!(list.contains("Hotel Tejo") && list.contains("Double") && list.contains("EUR 200.00"), "{list}");

    let pick = buttons(&bot).into_iter().find(|(t, _)| t.contains("Double")).expect("a Double button").1;
    let held = press(&mut bot, &pick).await;
    assert!(one(&held).starts_with("Held for you"), "{held:?}");
    let pay = button_with(&bot, "pay:");
    let booking = id_of(&pay);
    assert_eq!(h.booking_status(&booking).await, "held");

    let paying = press(&mut bot, &pay).await;
    assert!(one(&paying).contains("Payment of EUR 200.00"), "{paying:?}");
    // The simulated provider calls the webhook, which confirms: the same path as over HTTP.
    h.wait_for_status(&booking, "confirmed").await;

    let mine = say(&mut bot, "/mybookings").await;
    let mine = one(&mine);
    assert!(mine.contains("Hotel Tejo") && mine.contains("confirmed"), "{mine}");
    assert!(mine.contains(&bots::render::reference(uuid::Uuid::parse_str(&booking).expect("id"))), "{mine}");

    // The confirmation reaches the chat through the Telegram channel.
    let sent = say(&mut bot, DELIVER).await;
    assert!(sent.iter().any(|t| t.starts_with("Booking confirmed: Hotel Tejo")), "{sent:?}");
    let delivered: i64 = h
        .app
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM deliveries WHERE channel = 'telegram' AND status = 'delivered'", &[])
        .await
        .expect("query")
        .get(0);
    assert!(delivered >= 1, "telegram deliveries are recorded as delivered");
}

#[actix_web::test]
async fn a_sold_out_event_waitlist_offer_is_accepted_with_a_button() {
    let h = spawn().await;
    let owner = h.app.register("owner").await;
    let event = h.app.create_event(&owner, 1).await;
    let other = h.app.register("client").await;
    let (st, taken) = h.app.book(&other, &event, 1, true).await;
    assert_eq!(st, StatusCode::CREATED, "{taken}");

    let mut bot = h.bot().await;
    say(&mut bot, "/register").await;
    let events = say(&mut bot, "/events").await;
    assert!(one(&events).contains("0 of 1 left"), "{events:?}");
    let join = button_with(&bot, "ew:");
    let joined = press(&mut bot, &join).await;
    assert!(one(&joined).contains("on the waitlist"), "{joined:?}");

    // A cancellation frees the ticket: the engine offers it to the waitlist.
    let (st, v) = h
        .app
        .post(&format!("/api/v1/bookings/{}/cancel", taken["id"].as_str().expect("id")), Some(&other.token), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    let sent = say(&mut bot, DELIVER).await;
    assert!(sent.iter().any(|t| t.starts_with("A place is free for you")), "{sent:?}");
    let accept = button_with(&bot, "oa:");
    assert!(buttons(&bot).iter().any(|(t, d)| t == "Decline" && d.starts_with("od:")));
    // The client who cancelled has no linked chat: the Telegram channel does not reach them.
    let theirs: i64 = h
        .app
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM deliveries WHERE channel = 'telegram' AND user_id = $1",
            &[&uuid::Uuid::parse_str(&other.user_id).expect("id")],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(theirs, 0);
    let offers: i64 = h
        .app
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM deliveries WHERE channel = 'telegram' AND kind = 'offer_made' AND status = 'delivered'",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(offers, 1, "the offer was delivered once on the telegram channel");
    let accepted = press(&mut bot, &accept).await;
    assert!(one(&accepted).starts_with("Accepted"), "{accepted:?}");

    let row = h
        .app
        .db
        .client()
        .await
        .query_one(
            "SELECT b.status FROM bookings b JOIN telegram_links t ON t.user_id = b.user_id WHERE b.resource_id = $1",
            &[&uuid::Uuid::parse_str(&event).expect("id")],
        )
        .await
        .expect("the chat's user has a booking of the event");
    assert_eq!(row.get::<_, String>(0), "confirmed");

    // The same button again is refused with an explanation, not silence.
    let again = press(&mut bot, &accept).await;
    assert!(one(&again).starts_with("Sorry"), "{again:?}");
}

#[actix_web::test]
async fn a_booking_is_cancelled_from_mybookings() {
    let h = spawn().await;
    let owner = h.app.register("owner").await;
    let event = h.app.create_event(&owner, 5).await;
    let mut bot = h.bot().await;
    say(&mut bot, "/register").await;
    say(&mut bot, "/events").await;
    let book = button_with(&bot, "eb:");
    let held = press(&mut bot, &book).await;
    assert!(one(&held).starts_with("Held for you"), "{held:?}");
    let pay = button_with(&bot, "pay:");
    let booking = id_of(&pay);
    press(&mut bot, &pay).await;
    h.wait_for_status(&booking, "confirmed").await;

    let mine = say(&mut bot, "/mybookings").await;
    assert!(one(&mine).contains("confirmed"), "{mine:?}");
    let cancel = button_with(&bot, "cx:");
    assert_eq!(id_of(&cancel), booking);
    let done = press(&mut bot, &cancel).await;
    assert!(one(&done).starts_with("Cancelled"), "{done:?}");
    assert_eq!(h.booking_status(&booking).await, "cancelled");
    let _ = event;
}

#[actix_web::test]
async fn an_appointment_is_booked_and_rescheduled() {
    let h = spawn().await;
    let kind = serde_json::to_value(fixtures::provider(UserId::new_v7(), "Dr Silva").kind).expect("json");
    h.owner_with("Dr Silva", kind).await;
    let mut bot = h.bot().await;
    say(&mut bot, "/register").await;

    // Two weekdays well ahead (the provider works Monday to Friday).
    let mut day = today() + jiff::Span::new().days(7);
    while day.weekday().to_monday_one_offset() > 4 {
        day = day.tomorrow().expect("date");
    }
    let later = day + jiff::Span::new().days(7);

    say(&mut bot, "/providers").await;
    let pick = button_with(&bot, "pv:");
    assert!(one(&press(&mut bot, &pick).await).starts_with("Which date"));
    let slots = say(&mut bot, &day.to_string()).await;
    assert!(one(&slots).starts_with("Free times"), "{slots:?}");
    let first = button_with(&bot, "sb:");
    let held = press(&mut bot, &first).await;
    assert!(one(&held).starts_with("Held for you"), "{held:?}");
    let pay = button_with(&bot, "pay:");
    let booking = id_of(&pay);
    press(&mut bot, &pay).await;
    h.wait_for_status(&booking, "confirmed").await;

    say(&mut bot, "/mybookings").await;
    let rs = button_with(&bot, "rs:");
    assert!(one(&press(&mut bot, &rs).await).contains("which date"));
    say(&mut bot, &later.to_string()).await;
    let slot = button_with(&bot, "sb:");
    let moved = press(&mut bot, &slot).await;
    assert!(one(&moved).starts_with("Moved"), "{moved:?}");
    assert_eq!(h.booking_status(&booking).await, "confirmed");
    let line = say(&mut bot, "/mybookings").await;
    assert!(one(&line).contains(&later.to_string()), "the appointment is now on {later}: {line:?}");
}

#[actix_web::test]
async fn bad_input_and_stale_buttons_get_helpful_answers() {
    let h = spawn().await;
    let mut bot = h.bot().await;

    assert!(one(&say(&mut bot, "/frobnicate").await).contains("I do not know the command /frobnicate"));
    assert!(one(&say(&mut bot, "hello").await).contains("/help"));
    assert!(one(&say(&mut bot, &"x".repeat(301)).await).contains("too long"));
    assert!(one(&say(&mut bot, "/link !!!").await).contains("not a link code"));
    assert!(one(&say(&mut bot, "/link").await).contains("/link followed by the code"));
    // Booking needs a linked account: says how to get one.
    let owner = h.app.register("owner").await;
    let event = h.app.create_event(&owner, 5).await;
    let simple = uuid::Uuid::parse_str(&event).expect("id").simple().to_string();
    assert!(one(&press(&mut bot, &format!("eb:{simple}")).await).contains("not linked"));

    say(&mut bot, "/hotels").await;
    say(&mut bot, "Berlin").await;
    let not_dates = say(&mut bot, "next friday").await;
    assert!(one(&not_dates).contains("YYYY-MM-DD"), "{not_dates:?}");
    let not_dates = say(&mut bot, "2030-02-30 2030-03-02").await;
    assert!(one(&not_dates).contains("YYYY-MM-DD"), "{not_dates:?}");
    // Still waiting for dates: the state did not move on.
    let guests = say(&mut bot, "2030-05-01 2030-05-03").await;
    assert!(one(&guests).contains("How many guests"), "{guests:?}");
    assert!(one(&say(&mut bot, "many").await).contains("whole number"));

    // Buttons whose context is gone, and data nobody sent.
    for stale in ["hb:7", "sb:0", "hp:whatever", "zz:1", "pay:not-a-uuid", ""] {
        let got = press(&mut bot, stale).await;
        assert!(one(&got).contains("out of date"), "{stale}: {got:?}");
    }
    // A button for a booking that is not the chat's: refused like over HTTP (404).
    say(&mut bot, "/register").await;
    let got = press(&mut bot, &format!("cx:{}", uuid::Uuid::now_v7().simple())).await;
    assert!(one(&got).starts_with("Sorry"), "{got:?}");
}

#[actix_web::test]
async fn the_dialogue_resumes_after_a_restart() {
    let h = spawn().await;
    let mut bot = h.bot().await;
    say(&mut bot, "/hotels").await;
    say(&mut bot, "Porto").await;
    let stored: Value = h
        .app
        .db
        .client()
        .await
        .query_one("SELECT state FROM telegram_dialogues WHERE chat_id = $1", &[&CHAT])
        .await
        .expect("the state is in PostgreSQL")
        .get(0);
    assert_eq!(stored, json!({"step": "hotel_dates", "city": "Porto"}));
    drop(bot);

    // A new bot: new storage pool, new backend, nothing in memory.
    let mut bot = h.bot().await;
    let got = say(&mut bot, "2030-05-01 2030-05-03").await;
    assert!(one(&got).contains("How many guests"), "the bot still knew it was waiting for dates: {got:?}");
    let stored: Value = h
        .app
        .db
        .client()
        .await
        .query_one("SELECT state FROM telegram_dialogues WHERE chat_id = $1", &[&CHAT])
        .await
        .expect("state")
        .get(0);
    assert_eq!(stored["step"], "hotel_guests");
    assert_eq!(stored["city"], "Porto");
}
