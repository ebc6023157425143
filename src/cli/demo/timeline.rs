//! The demo's fault timeline as the banner prints it.

use std::time::Duration;

use loftwatch::simulator::{Delay, FaultEffect, Step};

/// Describes one step of the fault timeline as `mm:ss-mm:ss  what the simulator does`.
pub(super) fn describe_step(step: &Step) -> String {
    let clock = |at: Duration| format!("{:02}:{:02}", at.as_secs() / 60, at.as_secs() % 60);
    let when = match step.duration {
        Some(duration) => format!("{}-{}", clock(step.at), clock(step.at + duration)),
        None => format!("{}-end  ", clock(step.at)),
    };
    let path = step.fault.path.as_deref().unwrap_or("every path");
    let effect = match &step.fault.effect {
        FaultEffect::Status(codes) => {
            let codes: Vec<String> = codes.iter().map(u16::to_string).collect();
            format!("status {}", codes.join(", "))
        }
        FaultEffect::Latency(Delay::Fixed(delay)) => {
            format!("responses after {} s", delay.as_secs_f64())
        }
        FaultEffect::Latency(Delay::Uniform { min, max }) => format!(
            "responses after {}-{} s",
            min.as_secs_f64(),
            max.as_secs_f64()
        ),
        FaultEffect::Latency(Delay::Normal { mean, std_dev }) => format!(
            "responses after {} s on average (standard deviation {} s)",
            mean.as_secs_f64(),
            std_dev.as_secs_f64()
        ),
        FaultEffect::SlowBody(over) => format!("bodies trickled over {} s", over.as_secs_f64()),
        FaultEffect::Hang => "no response".to_owned(),
        FaultEffect::Reset => "connection reset".to_owned(),
        FaultEffect::Close => "connection closed without a response".to_owned(),
        FaultEffect::MalformedJson => "malformed JSON".to_owned(),
        FaultEffect::OversizedBody(bytes) => format!("bodies of {bytes} bytes"),
    };
    format!("{when}  {effect} on {path}")
}

#[cfg(test)]
mod tests {
    use loftwatch::simulator::Scenario;

    use super::*;

    #[test]
    fn demo_timeline_says_what_happens_when() {
        let scenario = Scenario::from_toml(super::super::DEMO_SCENARIO).expect("scenario parses");
        let lines: Vec<String> = scenario.steps.iter().map(describe_step).collect();
        assert_eq!(
            lines,
            [
                "00:05-00:20  status 401 on /v2/me.json",
                "00:05-00:20  status 503 on /v2/people.json",
                "01:00-01:20  status 429 on /v2/people.json",
                "01:00-01:15  responses after 2.5 s on /v2/me.json",
            ]
        );
    }
}
