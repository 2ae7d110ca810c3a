//! Notification channels fed by the engine's transactional outbox.
//!
//! `delivery` is the channel-agnostic core: notifier workers move outbox rows into per-channel
//! delivery records (and keep reminders in step with bookings), claim due deliveries with
//! `FOR UPDATE SKIP LOCKED`, send them through a [`delivery::Channel`], and record the result
//! with backoff and dead letters. `email` is the first channel (lettre, SMTP); `render` and
//! `ics` build what a recipient reads. `telegram` is the bot and its channel; webhooks and WebSocket plug in as
//! further `Channel`s. See ARCHITECTURE.md for the path of a notification.

pub mod delivery;
pub mod email;
pub mod ics;
pub mod render;
pub mod telegram;
pub mod webhook;
