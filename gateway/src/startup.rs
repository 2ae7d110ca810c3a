//! Builds the application: store, engine, accounts, middleware, routes; binds the listener.

use crate::accounts::memory::MemoryAccounts;
use crate::accounts::postgres::PgAccounts;
use crate::accounts::{Accounts, Role};
use crate::auth::JwtKeys;
use crate::configuration::Settings;
use crate::error::ApiError;
use crate::extract::{self, BodyLimit};
use crate::idempotency::IdempotencyStore;
use crate::idempotency::memory::MemoryIdempotency;
use crate::idempotency::postgres::PgIdempotency;
use crate::payments::Payments;
use crate::payments::memory::MemoryPayments;
use crate::payments::postgres::PgPayments;
use crate::payments::provider::PaymentProvider;
use crate::rate_limit::RateLimits;
use crate::state::AppState;
use crate::telemetry::{self, Spans};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpServer, web};
use engine::store::Store;
use engine::store::memory::MemoryStore;
use engine::store::postgres::{PgConfig, PgStore};
use engine::{Engine, SystemClock};
use rand::RngCore;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tracing_actix_web::TracingLogger;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("store: {0}")]
    Store(#[from] engine::store::StoreError),
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("bootstrap: {0}")]
    Bootstrap(String),
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    /// The outbox consumer (PostgreSQL only).
    notifier: Option<bots::delivery::NotifierHandle>,
    /// The Telegram bot (when TELEGRAM_BOT_TOKEN is set).
    telegram: Option<bots::telegram::BotHandle>,
}

async fn unknown_route(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    // A documented path with a method it does not serve never gets here: `method_guard` said 405.
    Err(ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {} {}", req.method(), req.path()),
    ))
}

/// `/docs` without the slash: Swagger UI's relative asset paths need `/docs/`.
async fn docs_redirect() -> actix_web::HttpResponse {
    actix_web::HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, crate::openapi::DOCS_PATH))
        .finish()
}

impl Application {
    /// Must run inside an actix system (`#[actix_web::main]`, `#[actix_web::test]`).
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        crate::metrics::handle();
        let (store, pg, accounts): (Arc<dyn Store>, Option<PgStore>, Arc<dyn Accounts>) = match &settings.database_url {
            Some(url) => {
                let mut cfg = PgConfig::new(url.expose());
                cfg.pool_size = settings.db_pool_size;
                let pg = PgStore::connect(&cfg).await?;
                let accounts = Arc::new(PgAccounts::new(pg.pool().clone()));
                (Arc::new(pg.clone()), Some(pg), accounts)
            }
            None => (Arc::new(MemoryStore::new()), None, Arc::new(MemoryAccounts::default())),
        };
        let engine = Engine::new(store, Arc::new(SystemClock), settings.engine_config());
        engine.start_sweeper();
        if let Some(pg) = &pg {
            crate::metrics::spawn_outbox_gauges(pg.pool().clone());
        }
        let secret = match &settings.jwt_secret {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => {
                tracing::warn!("JWT_SECRET is not set: using a random key, every token dies with this process");
                let mut k = vec![0u8; 48];
                rand::rng().fill_bytes(&mut k);
                k
            }
        };
        let keys = JwtKeys::new(&secret, settings.access_token_ttl_secs, settings.refresh_token_ttl_secs);
        let idempotency: Arc<dyn IdempotencyStore> = match &pg {
            Some(pg) => {
                let store = PgIdempotency::new(pg.pool().clone());
                store.start().await.map_err(|e| StartupError::Bootstrap(e.to_string()))?;
                Arc::new(store)
            }
            None => Arc::new(MemoryIdempotency::default()),
        };
        crate::idempotency::spawn_cleanup(idempotency.clone());
        let rate_limits = RateLimits::new(settings.rate_limit_auth_per_min, settings.rate_limit_bookings_per_sec);
        rate_limits.spawn_pruning();
        let payments: Arc<dyn Payments> = match &pg {
            Some(pg) => Arc::new(PgPayments::new(pg.pool().clone())),
            None => Arc::new(MemoryPayments::default()),
        };
        let payment_provider = Arc::new(PaymentProvider::new(&settings));
        let live = crate::live::Hub::new(engine.clone(), crate::live::LiveConfig::from_settings(&settings));
        let telegram = crate::telegram::Links::new(pg.as_ref().map(|p| p.pool().clone()));
        let state = web::Data::new(AppState {
            engine,
            accounts,
            keys,
            pg,
            settings: settings.clone(),
            idempotency,
            rate_limits,
            payments,
            payment_provider,
            live,
            telegram,
        });
        bootstrap_admin(&state).await?;
        if settings.demo_data_enabled() {
            crate::demo::seed(&state).await.map_err(|e| StartupError::Bootstrap(e.to_string()))?;
        }

        // Before the server runs (nothing may fail after that); dropped on error, it stops.
        let notifier = crate::notify::start(&settings).await.map_err(StartupError::Bootstrap)?;
        let telegram = crate::telegram::start(&state).map_err(StartupError::Bootstrap)?;
        let listener = listen((settings.app_host.as_str(), settings.app_port), settings.http_backlog)?;
        let port = listener.local_addr()?.port();
        state.payment_provider.set_listen_addr(listener.local_addr()?);
        let data = state.clone();
        let limit = BodyLimit(settings.max_body_bytes);
        let server = HttpServer::new(move || {
            let (app, api) = App::new()
                .into_utoipa_app()
                .openapi(crate::openapi::ApiDoc::openapi())
                .configure(crate::routes::configure)
                .split_for_parts();
            let api = crate::openapi::finish(api);
            let known = web::Data::new(crate::openapi::KnownPaths::of(&api));
            app.service(
                SwaggerUi::new(format!("{}{{_:.*}}", crate::openapi::DOCS_PATH)).url(crate::openapi::SPEC_PATH, api),
            )
            .app_data(known)
            .route("/docs", web::get().to(docs_redirect))
            .configure(crate::routes::dashboard_page::configure)
            // Innermost first: a replayed or rate-limited answer is still counted and logged.
            .wrap(from_fn(crate::idempotency::middleware))
            .wrap(from_fn(crate::openapi::method_guard))
            .wrap(from_fn(crate::rate_limit::middleware))
            .wrap(from_fn(crate::metrics::track))
            .wrap(from_fn(telemetry::trace_context))
            .wrap(TracingLogger::<Spans>::new())
            .wrap(from_fn(telemetry::request_id))
            .app_data(data.clone())
            .app_data(limit)
            .app_data(web::QueryConfig::default().error_handler(extract::query_error))
            .app_data(web::PathConfig::default().error_handler(extract::path_error))
            .default_service(web::to(unknown_route))
        })
        .workers(settings.http_workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())))
        .listen(listener)?
        // On SIGTERM/ctrl-c: stop accepting, let in-flight requests finish (up to 30 s).
        .shutdown_timeout(30)
        .run();
        // Live updates: on SIGTERM/ctrl-c close the WebSockets, or they hold the graceful stop.
        actix_web::rt::spawn(crate::live::close_on_signal(state.live.clone()));
        tracing::info!(port, store = if state.pg.is_some() { "postgres" } else { "memory" }, "listening");
        Ok(Application { port, server, state, notifier, telegram })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until the server is stopped (signal), then lets the resource actors finish their
    /// in-flight commits before the pool is dropped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application { server, state, notifier, telegram, .. } = self;
        let result = server.await;
        if let Some(t) = telegram {
            t.shutdown().await;
        }
        if let Some(n) = notifier {
            n.shutdown().await;
        }
        state.engine.shutdown(Duration::from_secs(10)).await;
        tracing::info!("stopped");
        result
    }
}

/// Binds the first address `addr` resolves to with this listen backlog. std's
/// `TcpListener::bind` always asks for 128, too few for a burst of new connections: the kernel
/// drops the SYNs past it and the client resends them only after a second.
fn listen(addr: impl std::net::ToSocketAddrs, backlog: usize) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        let socket = Socket::new(Domain::for_address(a), Type::STREAM, Some(Protocol::TCP))?;
        // As std and actix-web do: a restarted server binds at once, despite TIME_WAIT.
        socket.set_reuse_address(true)?;
        match socket.bind(&a.into()) {
            Ok(()) => {
                socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
                return Ok(socket.into());
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")))
}

/// Creates the admin from ADMIN_EMAIL/ADMIN_PASSWORD if no account has that email yet.
async fn bootstrap_admin(state: &AppState) -> Result<(), StartupError> {
    let (Some(email), Some(password)) = (&state.settings.admin_email, &state.settings.admin_password) else {
        return Ok(());
    };
    let exists = state.accounts.user_by_email(email).await.map_err(|e| StartupError::Bootstrap(e.to_string()))?;
    if exists.is_none() {
        crate::app::accounts::create_account(state, email, password.expose(), "Administrator", Role::Admin)
            .await
            .map_err(|e| StartupError::Bootstrap(e.to_string()))?;
        tracing::info!(email = %email, "created the admin account");
    }
    Ok(())
}
