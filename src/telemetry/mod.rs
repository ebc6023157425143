//! telemetry (placeholder).
