//! Hotels: the shared setup (hotels over cities, stays booked across the next year), then
//! (b) the hotel rush — random stays across the year, with cancellations — and the
//! availability search.

use crate::api::{Api, BoxError, XorShift, refused};
use crate::driver::Workload;
use crate::stats::Outcome;
use futures::StreamExt;
use futures::future::BoxFuture;
use gateway::accounts::Role;
use jiff::civil::Date;
use serde_json::json;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

pub struct Hotel {
    pub id: String,
    /// The double room type (16 rooms); the 4 suites are left alone.
    pub double: String,
}

pub struct HotelSetup {
    pub hotels: Vec<Hotel>,
    pub cities: usize,
    /// Stays booked before the run, acknowledged (id, status).
    pub acked: Vec<(Uuid, String)>,
}

/// A stay of 1 to 7 nights starting 2 to 361 days from today.
fn random_stay(rng: &mut XorShift, today: Date) -> (Date, Date) {
    let check_in = today + jiff::Span::new().days(2 + rng.below(360) as i64);
    let check_out = check_in + jiff::Span::new().days(1 + rng.below(7) as i64);
    (check_in, check_out)
}

fn stay_body(hotel: &Hotel, (check_in, check_out): (Date, Date)) -> serde_json::Value {
    json!({"resource_id": hotel.id, "confirm": true, "request": {
        "kind": "stay", "room_type_id": hotel.double, "check_in": check_in.to_string(),
        "check_out": check_out.to_string(), "guests": 2}})
}

impl HotelSetup {
    /// `hotels` hotels (16 doubles and 4 suites each) in `cities` cities, then `stays`
    /// confirmed stays spread over them and the next year.
    pub async fn create(api: &Arc<Api>, hotels: usize, cities: usize, stays: usize) -> Result<HotelSetup, BoxError> {
        let owner = api.token(Uuid::now_v7(), Role::Owner)?;
        // Names unique per run, so room-type ids (derived from the name) are too.
        let run = Uuid::now_v7().simple().to_string();
        let created: Vec<Result<Hotel, String>> = futures::stream::iter(0..hotels.max(1))
            .map(|i| {
                let (api, owner, run) = (api.clone(), owner.clone(), run.clone());
                async move {
                    let name = format!("Hotel {i} {run}");
                    let city = format!("City {}", i % cities.max(1));
                    // Free rooms: clients confirm at once without a payment.
                    let spec = engine::fixtures::free(engine::fixtures::hotel(
                        engine::domain::ids::UserId(Uuid::nil()),
                        &name,
                        &city,
                        16,
                        4,
                    ));
                    let double = match &spec.kind {
                        engine::domain::spec::KindSpec::Hotel(h) => h.room_types[0].id.0.to_string(),
                        _ => return Err("the hotel fixture is not a hotel".to_owned()),
                    };
                    let id = api.create_resource(&owner, &spec).await.map_err(|e| e.to_string())?;
                    Ok(Hotel { id, double })
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        let hotels: Vec<Hotel> = created.into_iter().collect::<Result<_, _>>()?;
        let today = jiff::Zoned::now().date();
        let client = api.token(Uuid::now_v7(), Role::Client)?;
        let hotels_ref = &hotels;
        let results: Vec<Outcome> = futures::stream::iter(0..stays)
            .map(|n| {
                let (api, client) = (api.clone(), client.clone());
                let mut rng = XorShift::seeded(n as u64 + 1);
                let hotel = &hotels_ref[rng.below(hotels_ref.len() as u64) as usize];
                let body = stay_body(hotel, random_stay(&mut rng, today));
                async move { api.book(&client, &body).await }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        let acked = results
            .into_iter()
            .filter_map(|o| match o {
                Outcome::Booked { id, status } => Some((id, status)),
                _ => None,
            })
            .collect();
        Ok(HotelSetup { hotels, cities: cities.max(1), acked })
    }
}

/// Searches a random city for a random stay, a page of `page` hotels.
pub struct Search {
    pub cities: usize,
    pub page: u32,
    pub today: Date,
}

impl Search {
    pub async fn one(&self, api: &Api, n: u64) -> Outcome {
        let mut rng = XorShift::seeded(n ^ 0x2545_F491_4F6C_DD1D);
        let (check_in, check_out) = random_stay(&mut rng, self.today);
        let url = format!(
            "{}/api/v1/hotels/search?city=City%20{}&check_in={check_in}&check_out={check_out}&guests=2&limit={}",
            api.base,
            rng.below(self.cities as u64),
            self.page
        );
        match api.http.get(url).send().await {
            Ok(r) if r.status().is_success() => {
                let status = r.status().as_u16();
                // Read the whole answer: its size is part of the cost.
                match r.bytes().await {
                    Ok(_) => Outcome::Answered { status },
                    Err(_) => Outcome::Refused { status: 0, code: "transport".into() },
                }
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let v = r.json::<serde_json::Value>().await.unwrap_or(serde_json::Value::Null);
                refused(Ok((status, v)))
            }
            Err(e) => refused(Err(e)),
        }
    }
}

impl Workload for Search {
    fn call<'a>(&'a self, api: &'a Api, n: u64) -> BoxFuture<'a, Outcome> {
        Box::pin(self.one(api, n))
    }
}

/// (b) The hotel rush: users book random stays in random hotels across the year; with
/// `cancel_pct` percent chance a request instead cancels one of that user's own confirmed
/// stays (chosen by the generator, so a cancellation always names a booking of its sender).
pub struct Rush {
    hotels: Vec<Hotel>,
    tokens: Vec<String>,
    /// Per user: the stays it holds confirmed and may cancel.
    mine: Vec<Mutex<Vec<Uuid>>>,
    cancel_pct: u32,
    today: Date,
}

impl Rush {
    pub async fn new(api: &Api, setup: HotelSetup, users: usize, cancel_pct: u32) -> Result<Rush, BoxError> {
        let tokens = api.client_tokens(users).await?;
        let mine = tokens.iter().map(|_| Mutex::new(Vec::new())).collect();
        Ok(Rush {
            hotels: setup.hotels,
            tokens,
            mine,
            cancel_pct: cancel_pct.min(100),
            today: jiff::Zoned::now().date(),
        })
    }

    pub async fn one(&self, api: &Api, n: u64) -> Outcome {
        let user = (n % self.tokens.len() as u64) as usize;
        let token = &self.tokens[user];
        let mut rng = XorShift::seeded(n ^ 0x5851_F42D_4C95_7F2D);
        if rng.chance(self.cancel_pct) {
            let victim = self.mine[user].lock().ok().and_then(|mut m| {
                let len = m.len() as u64;
                (len > 0).then(|| m.swap_remove(rng.below(len) as usize))
            });
            if let Some(id) = victim {
                return api.cancel(token, id).await;
            }
        }
        let hotel = &self.hotels[rng.below(self.hotels.len() as u64) as usize];
        let out = api.book(token, &stay_body(hotel, random_stay(&mut rng, self.today))).await;
        if let Outcome::Booked { id, .. } = &out
            && let Ok(mut m) = self.mine[user].lock()
        {
            m.push(*id);
        }
        out
    }
}

impl Workload for Rush {
    fn call<'a>(&'a self, api: &'a Api, n: u64) -> BoxFuture<'a, Outcome> {
        Box::pin(self.one(api, n))
    }
}
