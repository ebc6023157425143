//! Log output: plain text without colours when not on a terminal (journald adds its own
//! timestamps), or JSON lines for log shippers.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` overrides the default level, `info`; the demo
/// keeps logs to errors so its own display stays readable.
pub fn init(json: bool, demo: bool) {
    let default = if demo { "error" } else { "info" };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // The OpenTelemetry SDK logs an ERROR for every failed metrics export. loftwatch logs one
    // WARN a minute per endpoint instead, unless RUST_LOG asks for the SDK's own logs.
    let asks_for_sdk = std::env::var("RUST_LOG").is_ok_and(|value| value.contains("opentelemetry"));
    if !asks_for_sdk {
        for directive in ["opentelemetry_sdk=off", "opentelemetry_otlp=off"] {
            filter = filter.add_directive(directive.parse().expect("a valid directive"));
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(false).init();
        return;
    }
    let terminal = std::io::stderr().is_terminal();
    // Under systemd, journald stamps each line itself, so loftwatch leaves the time out.
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = builder.with_ansi(terminal && !under_journald);
    if under_journald {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
