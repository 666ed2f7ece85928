//! The common module: the components a flow author reaches for first. Triggers (`ticker`,
//! `cron`) start runs on their own, and `signal` with the message sent to it; `cron_check` tells when a schedule kept elsewhere was missed;
//! `router`, `array_split`, `collect`, `delay` and `dedupe` shape
//! them; `debug` shows what arrives; `history` keeps the latest items of each series.

mod array_split;
mod collect;
mod cron;
mod cron_check;
mod debug;
mod dedupe;
mod delay;
mod history;
mod router;
mod signal;
mod ticker;

use weir_sdk::Module;

/// The common module, its components one per line.
pub fn module() -> Module {
    Module::new("common", env!("CARGO_PKG_VERSION"))
        .component::<ticker::Ticker>()
        .component::<cron::Cron>()
        .component::<cron_check::CronCheck>()
        .component::<signal::Signal>()
        .component::<router::Router>()
        .component::<array_split::ArraySplit>()
        .component::<collect::Collect>()
        .component::<delay::Delay>()
        .component::<dedupe::Dedupe>()
        .component::<debug::Debug>()
        .component::<history::History>()
}

/// Now, as RFC 3339 in UTC with whole seconds, as messages carry times.
fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
