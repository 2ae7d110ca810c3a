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
    gateway::telemetry::init(settings.log_format);
    let app = match Application::build(settings).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "could not start");
            eprintln!("could not start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
