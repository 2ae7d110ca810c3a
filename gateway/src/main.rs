use gateway::configuration::Settings;
use gateway::startup::Application;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let telemetry = gateway::telemetry::init(settings.log_format, settings.otel_exporter_otlp_endpoint.as_deref());
    let app = match Application::build(settings).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "could not start");
            eprintln!("could not start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = app.run_until_stopped().await;
    if telemetry.exporting {
        // Off the runtime: the flush waits on the exporter's thread.
        let _ = actix_web::rt::task::spawn_blocking(move || telemetry.shutdown()).await;
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
