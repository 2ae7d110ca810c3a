//! Channel actors (Telegram, email) arrive with the channels issue.
