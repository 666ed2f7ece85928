//! `cron_check`: answers when a cron schedule kept elsewhere last came due and whether that
//! time was missed, as a watch over schedules it does not run itself wants: a CronJob's
//! `spec.schedule` against its `status.lastScheduleTime`, asked on a ticker. A time is missed
//! when nothing ran since it for longer than the grace (or than the schedule's own starting
//! deadline, when that is shorter: after it, the run will not start at all). The answer names
//! the first time missed since the last run, which stays the same until a run comes, so an
//! alert keyed on it is one per stall, however often the schedule fires. A suspended schedule
//! misses nothing. The schedule reads as the `cron` component reads it.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, HumanDuration, JsonSchema, NodeError, Port, Value,
    read_message,
};

use crate::cron::{parse_schedule, parse_zone};

/// Settings of a cron check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CronCheckSettings {
    /// How late a run may start before its time counts as missed, such as `1m` (a CronJob's
    /// Job is usually made within seconds).
    pub grace: HumanDuration,
}

impl Default for CronCheckSettings {
    fn default() -> Self {
        Self { grace: HumanDuration::from_secs(60) }
    }
}

/// The schedule to check.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schedule {
    /// The cron expression: `minute hour day-of-month month day-of-week` (or `@daily` and
    /// the like), or the same with seconds first.
    pub schedule: String,
    /// The IANA time zone it is read in, such as `Europe/Berlin`; UTC when empty.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// When it last ran (RFC 3339); none if it never did.
    #[serde(default)]
    pub last_run: Option<String>,
    /// When it began (RFC 3339), such as its object's creation: no earlier time counts.
    pub since: String,
    /// How late its run may still start, in seconds; none for no limit.
    #[serde(default)]
    pub starting_deadline_seconds: Option<i64>,
    /// Whether it is suspended, and so misses nothing.
    #[serde(default)]
    pub suspend: bool,
}

/// What the check found.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Checked {
    /// The latest time the schedule named, since it last ran (or began) and up to now (RFC 3339,
    /// in its time zone); none when no time came due since.
    pub last_due: Option<String>,
    /// The next time it names (RFC 3339, in its time zone).
    pub next_due: Option<String>,
    /// Whether a time went by without a run for longer than a run may be late.
    pub missed: bool,
    /// The first time missed since it last ran (RFC 3339, in its time zone); none when none
    /// was.
    pub missed_at: Option<String>,
}

/// A node of the cron check component.
#[derive(Debug)]
pub struct CronCheck {
    grace: Duration,
}

impl Component for CronCheck {
    const NAME: &'static str = "cron_check";
    type Settings = CronCheckSettings;

    fn describe() -> Description {
        Description {
            label: "Cron check",
            description: "Answers when a cron schedule kept elsewhere (a CronJob's) last came due since it last ran, and whether that time was missed.",
            tags: &["schedule", "cron", "missed", "cronjob"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(_: &CronCheckSettings) -> Vec<Port> {
        vec![Port::input::<Schedule>("in"), Port::output::<Checked>("out")]
    }

    fn build(settings: CronCheckSettings) -> Result<Self, NodeError> {
        let grace = Duration::from_std(settings.grace.get()).map_err(|_| {
            NodeError::invalid(format!("settings.grace: {} is too long", settings.grace))
        })?;
        Ok(Self { grace })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let wanted: Schedule = read_message(port, message)?;
        let checked = self.check(&wanted, Utc::now())?;
        cx.emit("out", checked).await
    }
}

impl CronCheck {
    /// What `wanted` looks like at `now`.
    fn check(&self, wanted: &Schedule, now: DateTime<Utc>) -> Result<Checked, NodeError> {
        let schedule = parse_schedule(&wanted.schedule)
            .map_err(|err| NodeError::invalid(format!("in.schedule: {err}")))?;
        let zone: Tz = match wanted.time_zone.as_deref() {
            None | Some("") => Tz::UTC,
            Some(name) => {
                parse_zone(name).map_err(|err| NodeError::invalid(format!("in.timeZone: {err}")))?
            }
        };
        let time = |field: &str, text: &str| {
            DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|err| {
                NodeError::invalid(format!("in.{field}: {text:?} is not an RFC 3339 time: {err}"))
            })
        };
        let since = time("since", &wanted.since)?;
        let last_run = wanted.last_run.as_deref().map(|t| time("lastRun", t)).transpose()?;
        let from = last_run.map_or(since, |last| last.max(since));
        // The latest time named at or before now: whole seconds, so one second on and back.
        let now = now.with_timezone(&zone);
        let second_on = now + Duration::seconds(1)
            - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
        let last_due =
            schedule.after(&second_on).next_back().filter(|due| due.with_timezone(&Utc) > from);
        let next_due = schedule.after(&now).next();
        // A deadline too long for a `Duration` is longer than the grace.
        let may_be_late = wanted
            .starting_deadline_seconds
            .and_then(|deadline| Duration::try_seconds(deadline.max(0)))
            .map_or(self.grace, |deadline| self.grace.min(deadline));
        // Times come in order: if any went by too long ago, the first since the last run did.
        let missed_at = schedule
            .after(&from.with_timezone(&zone))
            .next()
            .filter(|first| !wanted.suspend && now.signed_duration_since(first) > may_be_late);
        let rfc3339 = |t: DateTime<Tz>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        Ok(Checked {
            last_due: last_due.map(rfc3339),
            next_due: next_due.map(rfc3339),
            missed: missed_at.is_some(),
            missed_at: missed_at.map(rfc3339),
        })
    }
}

#[cfg(test)]
mod tests {
    use weir_sdk::{ErrorKind, json, testing::Harness};

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn check(message: Value, now: &str) -> Result<Checked, NodeError> {
        let node = CronCheck::build(CronCheckSettings::default()).unwrap();
        node.check(&serde_json::from_value(message).unwrap(), at(now))
    }

    fn checked(last_due: Option<&str>, next_due: &str, missed_at: Option<&str>) -> Checked {
        Checked {
            last_due: last_due.map(str::to_owned),
            next_due: Some(next_due.to_owned()),
            missed: missed_at.is_some(),
            missed_at: missed_at.map(str::to_owned),
        }
    }

    #[test]
    fn a_time_is_missed_once_nothing_ran_since_it_past_the_grace() {
        let every_minute = |last_run: Value, now: &str| {
            check(
                json!({ "schedule": "* * * * *", "since": "2026-12-07T10:00:30Z", "lastRun": last_run }),
                now,
            )
            .unwrap()
        };
        // Created at 10:00:30: nothing came due before 10:01.
        assert_eq!(
            every_minute(Value::Null, "2026-12-07T10:00:59Z"),
            checked(None, "2026-12-07T10:01:00Z", None)
        );
        // 10:01 came due; within the minute's grace it is not missed yet.
        assert_eq!(
            every_minute(Value::Null, "2026-12-07T10:01:59.5Z"),
            checked(Some("2026-12-07T10:01:00Z"), "2026-12-07T10:02:00Z", None)
        );
        // Past it, 10:01 is missed, and stays the time named however many follow; the latest
        // time due is the one at or before now.
        assert_eq!(
            every_minute(Value::Null, "2026-12-07T10:02:00.5Z"),
            checked(
                Some("2026-12-07T10:02:00Z"),
                "2026-12-07T10:03:00Z",
                Some("2026-12-07T10:01:00Z")
            )
        );
        for now in ["2026-12-07T10:02:01Z", "2026-12-07T10:30:00Z"] {
            let found = every_minute(Value::Null, now);
            assert_eq!(found.missed_at.as_deref(), Some("2026-12-07T10:01:00Z"), "{now}");
        }
        // It ran for 10:02 and nothing since: 10:03 is the one missed.
        assert_eq!(
            every_minute(json!("2026-12-07T10:02:00Z"), "2026-12-07T10:04:01Z"),
            checked(
                Some("2026-12-07T10:04:00Z"),
                "2026-12-07T10:05:00Z",
                Some("2026-12-07T10:03:00Z")
            )
        );
        let hourly = |extra: Value, now: &str| {
            let mut message = json!({ "schedule": "0 * * * *", "since": "2026-12-01T00:00:00Z", "lastRun": "2026-12-07T09:00:00Z" });
            message.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            check(message, now).unwrap()
        };
        assert_eq!(
            hourly(json!({}), "2026-12-07T10:01:01Z"),
            checked(
                Some("2026-12-07T10:00:00Z"),
                "2026-12-07T11:00:00Z",
                Some("2026-12-07T10:00:00Z")
            )
        );
        assert_eq!(
            hourly(json!({}), "2026-12-07T10:00:40Z"),
            checked(Some("2026-12-07T10:00:00Z"), "2026-12-07T11:00:00Z", None)
        );
        assert_eq!(
            hourly(json!({ "startingDeadlineSeconds": 10 }), "2026-12-07T10:00:11Z"),
            checked(
                Some("2026-12-07T10:00:00Z"),
                "2026-12-07T11:00:00Z",
                Some("2026-12-07T10:00:00Z")
            ),
            "a starting deadline shorter than the grace: missed once it passed"
        );
        for longest in [i64::MAX, i64::MAX / 1000 + 1] {
            assert_eq!(
                hourly(json!({ "startingDeadlineSeconds": longest }), "2026-12-07T10:00:40Z"),
                checked(Some("2026-12-07T10:00:00Z"), "2026-12-07T11:00:00Z", None),
                "a starting deadline longer than any duration leaves the grace: {longest}"
            );
        }
        assert_eq!(
            hourly(json!({ "suspend": true }), "2026-12-07T10:30:00Z"),
            checked(Some("2026-12-07T10:00:00Z"), "2026-12-07T11:00:00Z", None),
            "a suspended schedule misses nothing"
        );
        assert_eq!(
            hourly(json!({ "lastRun": "2026-12-07T10:00:02Z" }), "2026-12-07T10:30:00Z"),
            checked(None, "2026-12-07T11:00:00Z", None),
            "it ran for 10:00"
        );
    }

    #[test]
    fn the_schedule_is_read_in_its_time_zone() {
        // 09:00 in Berlin is 08:00 UTC in December.
        let berlin = json!({ "schedule": "0 9 * * *", "timeZone": "Europe/Berlin", "since": "2026-12-06T12:00:00Z" });
        assert_eq!(
            check(berlin.clone(), "2026-12-07T08:30:00Z").unwrap(),
            checked(
                Some("2026-12-07T09:00:00+01:00"),
                "2026-12-08T09:00:00+01:00",
                Some("2026-12-07T09:00:00+01:00")
            )
        );
        assert_eq!(
            check(berlin, "2026-12-07T07:59:00Z").unwrap(),
            checked(None, "2026-12-07T09:00:00+01:00", None)
        );
    }

    #[tokio::test]
    async fn bad_schedules_zones_and_times_are_refused_naming_the_field() {
        let node = Harness::build::<CronCheck>(&json!({})).unwrap();
        let node = &node;
        let refused = |message: Value| async move {
            let err = node.send("in", message).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Invalid);
            err.message().to_owned()
        };
        let since = "2026-12-07T10:00:00Z";
        assert!(
            refused(json!({ "schedule": "61 * * * *", "since": since }))
                .await
                .starts_with("in.schedule: \"61 * * * *\" does not read")
        );
        assert_eq!(
            refused(json!({ "schedule": "* * * * *", "timeZone": "Mars/Olympus", "since": since }))
                .await,
            "in.timeZone: \"Mars/Olympus\" is not an IANA time zone such as Europe/Berlin or UTC"
        );
        assert!(
            refused(json!({ "schedule": "* * * * *", "since": "yesterday" }))
                .await
                .starts_with("in.since: \"yesterday\" is not an RFC 3339 time")
        );
        // Made just now: no time of its schedule has come since, whatever the day.
        let now = chrono::Utc::now().to_rfc3339();
        node.send("in", json!({ "schedule": "@daily", "since": now })).await.unwrap();
        let checked = &node.emitted()[0].message;
        assert_eq!(checked["missed"], false, "{checked}");
    }
}
