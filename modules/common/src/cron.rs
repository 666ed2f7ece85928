//! `cron`: starts a run at the times a cron expression names, in a time zone. Standard 5-field
//! expressions (`*/15 * * * *`, day of week 0–7 with Sunday as 0 or 7) and 6 fields with
//! seconds first are read. Its kept state shows the last and next run in the node's status.
//! Runs missed while the module was down, or while no replica led, are skipped or caught up.
//! Its `control` input fires a run now, as the schedule would (`weir send NODE:control
//! '{"action":"fire"}'`), for a first try or a test of what a schedule starts.

use std::str::FromStr as _;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use weir_sdk::{Component, Context, Description, JsonSchema, NodeError, Port, Value, read_message};

/// Settings of a cron node.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CronSettings {
    /// When to run: `minute hour day-of-month month day-of-week` (such as `30 2 * * 1-5`, or
    /// `@daily`), or the same with seconds first.
    pub schedule: String,
    /// The IANA time zone the schedule is read in, such as `Europe/Berlin`.
    pub time_zone: String,
    /// Runs missed while the module was down: `skip` them, or `catchUp` by running each once,
    /// oldest first (at most 100).
    pub missed: Missed,
}

impl Default for CronSettings {
    fn default() -> Self {
        Self { schedule: "0 * * * *".to_owned(), time_zone: "UTC".to_owned(), missed: Missed::Skip }
    }
}

/// What to do about missed runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Missed {
    /// Forget them; run at the next time due.
    Skip,
    /// Run each of them once, oldest first, then carry on.
    CatchUp,
}

/// What each run starts with.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Fired {
    /// The time the schedule named (RFC 3339, in the node's time zone).
    pub scheduled: String,
    /// When the run started (RFC 3339, UTC).
    pub time: String,
    /// Whether this run catches up on a time missed while the module was down.
    pub late: bool,
}

/// What the `control` input takes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// `fire` starts a run now, as if the schedule named this moment.
    pub action: Action,
}

/// A control action.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Start a run now and answer with its answer; the schedule goes on as before.
    Fire,
}

/// What a cron node keeps: shown in its status.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kept {
    /// The last time run (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_run: Option<String>,
    /// The next time due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_run: Option<String>,
}

/// The most missed runs one start catches up on.
const MAX_CATCH_UP: usize = 100;

/// A node of the cron component.
#[derive(Debug)]
pub struct Cron {
    schedule: cron::Schedule,
    zone: Tz,
    missed: Missed,
}

impl Component for Cron {
    const NAME: &'static str = "cron";
    type Settings = CronSettings;

    fn describe() -> Description {
        Description {
            label: "Cron",
            description: "Starts a run at the times a cron expression names, in a time zone.",
            tags: &["trigger", "schedule", "cron", "timer"],
            trigger: true,
            permissions: &[],
        }
    }

    fn ports(_: &CronSettings) -> Vec<Port> {
        vec![Port::output::<Fired>("out"), Port::input::<Control>("control").with_label("Control")]
    }

    fn build(settings: CronSettings) -> Result<Self, NodeError> {
        let schedule = parse_schedule(&settings.schedule)
            .map_err(|err| NodeError::invalid(format!("settings.schedule: {err}")))?;
        let zone = parse_zone(&settings.time_zone)
            .map_err(|err| NodeError::invalid(format!("settings.timeZone: {err}")))?;
        Ok(Self { schedule, zone, missed: settings.missed })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let Control { action: Action::Fire } = read_message(port, message)?;
        // Not a scheduled time, so it is not the last run catching up starts from.
        let now = Utc::now().with_timezone(&self.zone);
        let fired = Fired { scheduled: rfc3339(&now), time: crate::now_rfc3339(), late: false };
        let message = serde_json::to_value(&fired)
            .map_err(|err| NodeError::internal(format!("cannot encode the run's start: {err}")))?;
        cx.start_run(message.clone()).emit("out", message).await
    }

    async fn run(&self, cx: &Context) -> Result<(), NodeError> {
        let kept: Kept = cx.state()?;
        let now = Utc::now().with_timezone(&self.zone);
        let last = kept
            .last_run
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&self.zone));
        if let (Some(last), Missed::CatchUp) = (last, self.missed) {
            let missed: Vec<_> =
                self.schedule.after(&last).take_while(|t| *t <= now).take(MAX_CATCH_UP).collect();
            for scheduled in missed {
                if cx.is_cancelled() {
                    return Ok(());
                }
                self.fire(cx, scheduled, true).await;
            }
        }
        loop {
            let from = Utc::now().with_timezone(&self.zone);
            let Some(next) = self.schedule.after(&from).next() else {
                tracing::info!(node = %cx.node(), "the schedule names no more times");
                return Ok(());
            };
            let kept: Kept = cx.state()?;
            cx.save_state(Kept { next_run: Some(rfc3339(&next)), ..kept })?;
            let wait = (next.with_timezone(&Utc) - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cx.cancelled() => return Ok(()),
            }
            self.fire(cx, next, false).await;
        }
    }
}

impl Cron {
    /// Starts a run for `scheduled` and waits for it; a failed run is reported, not fatal.
    async fn fire(&self, cx: &Context, scheduled: DateTime<Tz>, late: bool) {
        let fired = Fired { scheduled: rfc3339(&scheduled), time: crate::now_rfc3339(), late };
        if let Ok(kept) = cx.state::<Kept>() {
            let _ = cx.save_state(Kept { last_run: Some(fired.scheduled.clone()), ..kept });
        }
        let message = serde_json::to_value(&fired).unwrap_or_default();
        if let Err(err) = cx.start_run(message.clone()).emit("out", message).await
            && !cx.is_cancelled()
        {
            tracing::warn!(node = %cx.node(), error = %err, scheduled = %fired.scheduled, "a scheduled run failed");
            cx.report(&err);
        }
    }
}

fn rfc3339(time: &DateTime<Tz>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Reads an IANA time zone's name.
pub(crate) fn parse_zone(name: &str) -> Result<Tz, String> {
    Tz::from_str(name)
        .map_err(|_| format!("{name:?} is not an IANA time zone such as Europe/Berlin or UTC"))
}

/// Reads a standard cron expression: 5 fields get a `0` seconds field in front, and the
/// day-of-week numbers (0–7, Sunday 0 or 7) become names, since the cron crate counts Sunday
/// as 1.
pub(crate) fn parse_schedule(expression: &str) -> Result<cron::Schedule, String> {
    let expression = expression.trim();
    if expression.starts_with('@') {
        return cron::Schedule::from_str(expression).map_err(|err| err.to_string());
    }
    let mut fields: Vec<String> = expression.split_whitespace().map(str::to_owned).collect();
    match fields.len() {
        5 => fields.insert(0, "0".to_owned()),
        6 => {}
        n => {
            return Err(format!(
                "{expression:?} has {n} fields: write 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)"
            ));
        }
    }
    fields[5] = day_names(&fields[5]);
    let joined = fields.join(" ");
    cron::Schedule::from_str(&joined).map_err(|err| format!("{expression:?} does not read: {err}"))
}

/// Replaces day-of-week numbers by names, leaving step sizes (after `/`) alone.
fn day_names(field: &str) -> String {
    const NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    let mut out = String::with_capacity(field.len());
    let mut digits = String::new();
    let mut after_slash = false;
    let flush = |digits: &mut String, out: &mut String, after_slash: bool| {
        if digits.is_empty() {
            return;
        }
        match digits.parse::<usize>().ok().and_then(|n| NAMES.get(n)) {
            Some(name) if !after_slash => out.push_str(name),
            _ => out.push_str(digits),
        }
        digits.clear();
    };
    for c in field.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        flush(&mut digits, &mut out, after_slash);
        after_slash = c == '/';
        out.push(c);
    }
    flush(&mut digits, &mut out, after_slash);
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use weir_sdk::{json, testing::Harness};

    use super::*;

    fn next_after(expression: &str, after: DateTime<Tz>) -> Vec<String> {
        parse_schedule(expression).unwrap().after(&after).take(3).map(|t| rfc3339(&t)).collect()
    }

    #[test]
    fn standard_expressions_mean_what_they_mean_in_crontab() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 2026-11-20 is a Friday.
        let friday_noon = berlin.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
        assert_eq!(
            next_after("30 9 * * 1-5", friday_noon),
            ["2026-11-23T09:30:00+01:00", "2026-11-24T09:30:00+01:00", "2026-11-25T09:30:00+01:00"],
            "weekdays are Monday to Friday, as in crontab"
        );
        assert_eq!(
            next_after("0 0 * * 0", friday_noon),
            ["2026-11-22T00:00:00+01:00", "2026-11-29T00:00:00+01:00", "2026-12-06T00:00:00+01:00"],
            "0 is Sunday"
        );
        assert_eq!(next_after("0 0 * * 7", friday_noon)[0], "2026-11-22T00:00:00+01:00");
        assert_eq!(
            next_after("*/20 * * * * *", friday_noon),
            ["2026-11-20T12:00:20+01:00", "2026-11-20T12:00:40+01:00", "2026-11-20T12:01:00+01:00"],
        );
        assert_eq!(day_names("1-5/2,0"), "MON-FRI/2,SUN");
    }

    #[test]
    fn bad_schedules_and_zones_are_refused_naming_the_field() {
        let err = Harness::build::<Cron>(&json!({ "schedule": "* * *" })).unwrap_err();
        assert_eq!(
            err.message(),
            "settings.schedule: \"* * *\" has 3 fields: write 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)"
        );
        let err = Harness::build::<Cron>(&json!({ "schedule": "61 * * * *" })).unwrap_err();
        assert!(
            err.message().starts_with("settings.schedule: \"61 * * * *\" does not read"),
            "{err}"
        );
        let err = Harness::build::<Cron>(&json!({ "timeZone": "Mars/Olympus" })).unwrap_err();
        assert_eq!(
            err.message(),
            "settings.timeZone: \"Mars/Olympus\" is not an IANA time zone such as Europe/Berlin or UTC"
        );
    }

    #[tokio::test]
    async fn runs_on_schedule_and_shows_the_next_run() {
        let node = Harness::build::<Cron>(&json!({ "schedule": "* * * * * *" })).unwrap();
        let running = async { node.run().await };
        let watch = async {
            while node.emitted().len() < 2 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            node.cancel();
        };
        let (ran, ()) = tokio::join!(running, watch);
        ran.unwrap();
        let first = &node.emitted()[0].message;
        assert_eq!(first["late"], false);
        let kept = node.kept_state();
        assert!(
            kept["nextRun"].as_str().is_some_and(|t| t > first["scheduled"].as_str().unwrap()),
            "{kept}"
        );
        assert!(kept["lastRun"].is_string(), "{kept}");
    }

    #[tokio::test]
    async fn missed_runs_are_caught_up_or_skipped() {
        // One second past the minute three minutes ago: three whole minutes were missed.
        let now = Utc::now();
        let minute = now - chrono::Duration::seconds(i64::from(chrono::Timelike::second(&now)));
        let three_minutes_ago = (minute - chrono::Duration::seconds(179)).to_rfc3339();
        for (missed, expected_late) in [("catchUp", 3), ("skip", 0)] {
            let node =
                Harness::build::<Cron>(&json!({ "schedule": "0 * * * * *", "missed": missed }))
                    .unwrap();
            node.keep_state(json!({ "lastRun": three_minutes_ago })).unwrap();
            let running = async { node.run().await };
            let watch = async {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                node.cancel();
            };
            let (ran, ()) = tokio::join!(running, watch);
            ran.unwrap();
            let late = node.emitted().iter().filter(|e| e.message["late"] == true).count();
            assert_eq!(late, expected_late, "{missed}");
        }
    }

    #[tokio::test]
    async fn control_fires_a_run_now_and_answers_with_its_answer() {
        let node = Harness::build::<Cron>(
            &json!({ "schedule": "0 0 1 1 *", "timeZone": "Europe/Berlin" }),
        )
        .unwrap();
        node.answer_with(|_, _| Ok(json!({ "scaled": 3 })));
        let answer = node.send("control", json!({ "action": "fire" })).await.unwrap();
        assert_eq!(answer, json!({ "scaled": 3 }));
        let fired = &node.emitted()[0].message;
        assert_eq!(fired["late"], false);
        assert!(
            fired["scheduled"]
                .as_str()
                .is_some_and(|t| t.ends_with("+01:00") || t.ends_with("+02:00")),
            "{fired}"
        );
        assert!(node.kept_state().get("lastRun").is_none(), "a fire is not a scheduled run");
        let err = node.send("control", json!({ "action": "stop" })).await.unwrap_err();
        assert_eq!(err.message(), "control.action: expected `fire`");
        let err = node.send("in", json!({})).await.unwrap_err();
        assert_eq!(err.kind(), weir_sdk::ErrorKind::Invalid);
    }
}
