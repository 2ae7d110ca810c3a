//! (d) Mixed: what a busy day looks like — mostly searches, then hotel bookings and
//! cancellations (the rush), and ticket sales on a popular event, all at once.

use crate::api::Api;
use crate::driver::Workload;
use crate::flash_sale::FlashSale;
use crate::hotels::{Rush, Search};
use crate::stats::Outcome;
use futures::future::BoxFuture;

pub struct Mixed {
    pub search: Search,
    pub rush: Rush,
    pub sale: FlashSale,
    /// Percent of requests that search; `ticket_pct` buy tickets; the rest book or cancel stays.
    pub search_pct: u32,
    pub ticket_pct: u32,
}

impl Workload for Mixed {
    fn call<'a>(&'a self, api: &'a Api, n: u64) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            // Spread by a hash of n, not n itself: n % 100 would give each closed-loop client
            // one fixed kind of request.
            let pick = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100;
            if pick < u64::from(self.search_pct) {
                self.search.one(api, n).await
            } else if pick < u64::from(self.search_pct + self.ticket_pct) {
                self.sale.call(api, n).await
            } else {
                self.rush.one(api, n).await
            }
        })
    }
}
