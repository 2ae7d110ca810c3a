//! Demo data for a first run: users of every role, hotels, events and providers. Seeded once
//! (skipped when the demo owner exists). The passwords are public: never enable demo data on a
//! database that matters.

use crate::accounts::Role;
use crate::app::accounts::create_account;
use crate::error::ApiError;
use crate::state::AppState;
use engine::fixtures;

pub const DEMO_PASSWORD: &str = "demo-password";
pub const DEMO_USERS: [(&str, &str, Role); 3] = [
    ("admin@demo.example", "Demo Admin", Role::Admin),
    ("owner@demo.example", "Demo Owner", Role::Owner),
    ("client@demo.example", "Demo Client", Role::Client),
];

pub async fn seed(state: &AppState) -> Result<(), ApiError> {
    let existing =
        state.accounts.user_by_email(DEMO_USERS[1].0).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    if existing.is_some() {
        tracing::info!("demo data already present");
        return Ok(());
    }
    let mut owner = None;
    for (email, name, role) in DEMO_USERS {
        let u = create_account(state, email, DEMO_PASSWORD, name, role).await?;
        if role == Role::Owner {
            owner = Some(u.id);
        }
    }
    let Some(owner) = owner else { return Ok(()) };
    let now = state.engine.now();
    let specs = [
        fixtures::hotel(owner, "Hotel Spree", "Berlin", 8, 2),
        fixtures::hotel(owner, "Mitte Rooms", "Berlin", 4, 1),
        fixtures::hotel(owner, "Casa Alfama", "Lisbon", 6, 2),
        fixtures::event(owner, "Rust Meetup", 120, now),
        fixtures::event_with_categories(owner, "Symphony Night", 300, 100, now),
        fixtures::provider(owner, "Dr. Weber (dentist)"),
        fixtures::provider(owner, "Hair by Ana"),
    ];
    for (i, mut spec) in specs.into_iter().enumerate() {
        // The hotels answer to seed 000's ids too: `{"hotel_id": 0, ...}` feeds Hotel Spree.
        if i < 3 {
            spec.reference = Some(i.to_string());
        }
        state.engine.create(spec).await?;
    }
    println!("demo data: 3 hotels (references 0, 1, 2), 2 events, 2 providers; users (password '{DEMO_PASSWORD}'):");
    for (email, _, role) in DEMO_USERS {
        println!("  {:<7} {email}", role.as_str());
    }
    Ok(())
}
