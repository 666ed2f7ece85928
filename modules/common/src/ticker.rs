//! `ticker`: starts a run every interval. Each tick waits for its run to finish, so a ticker
//! never overlaps itself; a slow run delays the next tick instead of piling runs up. It runs on
//! the module's leader only, and its `control` input pauses, resumes or fires it
//! (`weir send tick:control '{"action":"stop"}'`); a pause is kept across restarts.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::{sync::watch, time::Instant};
use weir_sdk::{
    Component, Context, Description, HumanDuration, JsonSchema, NodeError, Port, Value, json,
    read_message,
};

/// Settings of a ticker.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TickerSettings {
    /// How often to tick, such as `30s`, `5m` or `1h`; at least 100ms.
    pub interval: HumanDuration,
    /// When the first tick comes: `immediately` when the node starts, or `afterInterval`.
    pub first_tick: FirstTick,
}

impl Default for TickerSettings {
    fn default() -> Self {
        Self { interval: HumanDuration::from_secs(60), first_tick: FirstTick::Immediately }
    }
}

/// When a ticker's first tick comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FirstTick {
    /// As soon as the node starts (or gains the lead).
    Immediately,
    /// One interval after it starts.
    AfterInterval,
}

/// What each tick emits, and what starts the run.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Tick {
    /// Ticks since the node was created, this one included.
    pub count: u64,
    /// When the tick fired (RFC 3339, UTC).
    pub time: String,
}

/// What the `control` input takes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// `stop` pauses the ticker, `start` resumes it, `tick` fires one tick now.
    pub action: Action,
}

/// A control action.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Pause until `start`.
    Stop,
    /// Resume.
    Start,
    /// Fire one tick now, paused or not.
    Tick,
}

/// What a ticker keeps across restarts.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    count: u64,
    paused: bool,
}

/// A node of the ticker component.
#[derive(Debug)]
pub struct Ticker {
    interval: Duration,
    first_tick: FirstTick,
    /// Whether the ticker is paused; `control` writes it, the loop waits on it.
    paused: watch::Sender<bool>,
    /// Serializes ticks, so a `tick` action never overlaps the loop's own.
    ticking: tokio::sync::Mutex<()>,
}

/// The shortest interval a ticker takes.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

impl Component for Ticker {
    const NAME: &'static str = "ticker";
    type Settings = TickerSettings;

    fn describe() -> Description {
        Description {
            label: "Ticker",
            description: "Starts a run every interval; the next tick waits for the run to finish.",
            tags: &["trigger", "schedule", "interval", "timer"],
            trigger: true,
            permissions: &[],
        }
    }

    fn ports(_: &TickerSettings) -> Vec<Port> {
        vec![Port::output::<Tick>("out"), Port::input::<Control>("control").with_label("Control")]
    }

    fn build(settings: TickerSettings) -> Result<Self, NodeError> {
        let interval = settings.interval.get();
        if interval < MIN_INTERVAL {
            return Err(NodeError::invalid(format!(
                "settings.interval: {} is shorter than the shortest interval, {MIN_INTERVAL:?}",
                settings.interval
            )));
        }
        Ok(Self {
            interval,
            first_tick: settings.first_tick,
            paused: watch::channel(false).0,
            ticking: tokio::sync::Mutex::new(()),
        })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let Control { action } = read_message(port, message)?;
        match action {
            Action::Stop | Action::Start => {
                let paused = matches!(action, Action::Stop);
                self.paused.send_replace(paused);
                let kept: Kept = cx.state()?;
                cx.save_state(Kept { paused, ..kept })?;
                Ok(json!({ "paused": paused }))
            }
            Action::Tick => self.tick(cx).await,
        }
    }

    async fn run(&self, cx: &Context) -> Result<(), NodeError> {
        let kept: Kept = cx.state()?;
        self.paused.send_replace(kept.paused);
        let mut paused = self.paused.subscribe();
        let mut next = match self.first_tick {
            FirstTick::Immediately => Instant::now(),
            FirstTick::AfterInterval => Instant::now() + self.interval,
        };
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = cx.cancelled() => return Ok(()),
            }
            tokio::select! {
                resumed = paused.wait_for(|paused| !*paused) => if resumed.is_err() { return Ok(()) },
                () = cx.cancelled() => return Ok(()),
            }
            let started = Instant::now();
            if let Err(err) = self.tick(cx).await {
                if cx.is_cancelled() {
                    return Ok(());
                }
                // The run failed, not the ticker: report it and keep ticking.
                tracing::warn!(node = %cx.node(), error = %err, "a tick's run failed");
                cx.report(&err);
            }
            // Fixed rate while runs are short; a long run pushes the next tick back.
            next = (started + self.interval).max(Instant::now());
        }
    }
}

impl Ticker {
    /// Fires one tick: starts a run with it and waits for the run to finish.
    async fn tick(&self, cx: &Context) -> Result<Value, NodeError> {
        let _one_at_a_time = self.ticking.lock().await;
        let kept: Kept = cx.state()?;
        let count = kept.count + 1;
        cx.save_state(Kept { count, ..kept })?;
        let tick = Tick { count, time: crate::now_rfc3339() };
        let message = serde_json::to_value(&tick)
            .map_err(|err| NodeError::internal(format!("cannot encode the tick: {err}")))?;
        cx.start_run(message.clone()).emit("out", message).await
    }
}

#[cfg(test)]
mod tests {
    use weir_sdk::testing::Harness;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_every_interval_without_overlapping_and_pauses_on_request() {
        let node = Harness::build::<Ticker>(&json!({ "interval": "10s" })).unwrap();
        let running = async { node.run().await };
        let watch = async {
            tokio::time::sleep(Duration::from_secs(25)).await;
            let counts: Vec<u64> =
                node.emitted().iter().map(|e| e.message["count"].as_u64().unwrap()).collect();
            assert_eq!(counts, [1, 2, 3], "ticks at 0s, 10s and 20s");
            assert_eq!(
                node.send("control", json!({ "action": "stop" })).await.unwrap(),
                json!({ "paused": true })
            );
            tokio::time::sleep(Duration::from_secs(30)).await;
            assert_eq!(node.emitted().len(), 3, "no ticks while paused");
            assert_eq!(node.kept_state()["paused"], true);
            node.send("control", json!({ "action": "start" })).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(node.emitted().len(), 4, "resumes at once, the interval having passed");
            node.send("control", json!({ "action": "tick" })).await.unwrap();
            assert_eq!(node.emitted().len(), 5);
            node.cancel();
        };
        let (ran, ()) = tokio::join!(running, watch);
        ran.unwrap();
        assert_eq!(node.kept_state()["count"], 5);
    }

    #[tokio::test(start_paused = true)]
    async fn the_longest_interval_a_setting_writes_waits_without_ticking() {
        // 23 million years, the most 32 characters write: the clock's arithmetic holds it, and
        // the timer waits past its own reach.
        let interval = "4294967295d".repeat(2);
        let node = Harness::build::<Ticker>(
            &json!({ "interval": interval, "firstTick": "afterInterval" }),
        )
        .unwrap();
        let running = async { node.run().await };
        let watch = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            assert!(node.emitted().is_empty());
            node.cancel();
        };
        let (ran, ()) = tokio::join!(running, watch);
        ran.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_run_pushes_the_next_tick_back_without_a_burst_to_catch_up() {
        let node =
            Harness::build::<Ticker>(&json!({ "interval": "1s", "firstTick": "afterInterval" }))
                .unwrap();
        // The first tick's run takes 1.5 s: from 1 s to 2.5 s.
        node.answer_after(|_, tick| {
            if tick["count"] == 1 { Duration::from_millis(1_500) } else { Duration::ZERO }
        });
        let started = tokio::time::Instant::now();
        let running = async { node.run().await };
        let watch = async {
            // (time, ticks by then): the second tick once the first run ended, the third an
            // interval after the second, not at 3 s to keep the first schedule.
            for (at, ticks) in [(2_400, 1), (2_600, 2), (3_400, 2), (3_600, 3)] {
                tokio::time::sleep_until(started + Duration::from_millis(at)).await;
                assert_eq!(node.emitted().len(), ticks, "at {at} ms");
            }
            node.cancel();
        };
        let (ran, ()) = tokio::join!(running, watch);
        ran.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_come_each_interval_and_a_failed_run_is_reported() {
        let node =
            Harness::build::<Ticker>(&json!({ "interval": "1s", "firstTick": "afterInterval" }))
                .unwrap();
        node.answer_with(|_, tick| {
            if tick["count"] == 2 {
                Err(NodeError::transient("registry answered 429"))
            } else {
                Ok(Value::Null)
            }
        });
        let running = async { node.run().await };
        let watch = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(node.emitted().is_empty(), "the first tick waits one interval");
            tokio::time::sleep(Duration::from_millis(2_600)).await;
            assert_eq!(node.emitted().len(), 3);
            node.cancel();
        };
        let (ran, ()) = tokio::join!(running, watch);
        ran.unwrap();
        let reported: Vec<String> = node.reported().iter().map(ToString::to_string).collect();
        assert_eq!(reported, ["registry answered 429"]);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        let err = Harness::build::<Ticker>(&json!({ "interval": "10ms" })).unwrap_err();
        assert_eq!(
            err.message(),
            "settings.interval: 10ms is shorter than the shortest interval, 100ms"
        );
        let err = Harness::build::<Ticker>(&json!({ "interval": "soon" })).unwrap_err();
        assert!(
            err.message().starts_with("settings.interval: \"soon\" is not a duration"),
            "{err}"
        );
        let err = Harness::build::<Ticker>(&json!({ "every": "1m" })).unwrap_err();
        assert_eq!(
            err.message(),
            "settings.every: unknown field `every`, expected `interval` or `firstTick`"
        );
    }

    #[tokio::test]
    async fn a_bad_control_message_names_the_field() {
        let node = Harness::build::<Ticker>(&json!({})).unwrap();
        let err = node.send("control", json!({ "action": "pause" })).await.unwrap_err();
        assert_eq!(err.message(), "control.action: expected one of `stop`, `start`, `tick`");
    }
}
