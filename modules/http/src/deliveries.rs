//! GitHub's delivery ids, remembered by each webhook node so that a delivery already accepted is
//! not run again. GitHub gives every delivery a GUID in `X-GitHub-Delivery` and a redelivery
//! (a person's "Redeliver", or a request someone captured and sends again) carries the same
//! one. An id is remembered from the moment its run starts; a run that fails forgets it, so a
//! redelivery after a failure runs again, which is what "Redeliver" is for. Memory is bounded:
//! ids older than the window are dropped, and beyond the most kept the oldest go first (so
//! a flood of new ids can make an old one forgotten early). Each replica remembers its own.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// The longest id taken: GitHub's are 36-character GUIDs.
pub const MAX_ID_BYTES: usize = 128;

/// The delivery ids one node remembers.
#[derive(Debug)]
pub struct Deliveries {
    window: Duration,
    most: usize,
    memory: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    /// Each id, when its run started and whether it is still running.
    ids: HashMap<String, (Instant, bool)>,
    /// The ids oldest first, with when each started.
    order: VecDeque<(Instant, String)>,
}

impl Memory {
    fn forget_oldest(&mut self) {
        if let Some((_, oldest)) = self.order.pop_front() {
            self.ids.remove(&oldest);
        }
    }
}

/// What an id is to the node.
#[derive(Debug)]
pub enum Seen {
    /// New: run it; the id stays remembered once [`Accepted::keep`] says the run went well.
    New(Accepted),
    /// Accepted before and its run went well: not run again.
    Done,
    /// Its run is under way.
    Running,
}

impl Deliveries {
    /// Ids kept for `window`, at most `most` of them.
    pub fn new(window: Duration, most: usize) -> Arc<Self> {
        Arc::new(Self { window, most, memory: Mutex::default() })
    }

    /// What `id` is, at `now`; a new one is remembered as running.
    pub fn begin(self: &Arc<Self>, id: &str, now: Instant) -> Seen {
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        while memory
            .order
            .front()
            .is_some_and(|(started, _)| now.saturating_duration_since(*started) >= self.window)
        {
            memory.forget_oldest();
        }
        match memory.ids.get(id) {
            Some((_, true)) => return Seen::Running,
            Some((_, false)) => return Seen::Done,
            None => {}
        }
        while memory.ids.len() >= self.most && !memory.order.is_empty() {
            memory.forget_oldest();
        }
        memory.ids.insert(id.to_owned(), (now, true));
        memory.order.push_back((now, id.to_owned()));
        Seen::New(Accepted { deliveries: Arc::clone(self), id: id.to_owned(), kept: false })
    }

    fn settle(&self, id: &str, kept: bool) {
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        if kept {
            if let Some((_, running)) = memory.ids.get_mut(id) {
                *running = false;
            }
        } else if memory.ids.remove(id).is_some() {
            memory.order.retain(|(_, kept)| kept != id);
        }
    }
}

/// A new delivery whose run is under way: dropped without [`Accepted::keep`] (the run failed),
/// its id is forgotten.
#[derive(Debug)]
pub struct Accepted {
    deliveries: Arc<Deliveries>,
    id: String,
    kept: bool,
}

impl Accepted {
    /// The run went well: the id stays remembered, and the delivery is not run again.
    pub fn keep(mut self) {
        self.kept = true;
        self.deliveries.settle(&self.id, true);
    }
}

impl Drop for Accepted {
    fn drop(&mut self) {
        if !self.kept {
            self.deliveries.settle(&self.id, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(seen: Seen) -> Accepted {
        match seen {
            Seen::New(accepted) => accepted,
            other => panic!("a new delivery, not {other:?}"),
        }
    }

    #[test]
    fn an_id_is_done_once_its_run_went_well_and_forgotten_when_it_failed() {
        let deliveries = Deliveries::new(Duration::from_secs(60), 10);
        let start = Instant::now();
        let first = accepted(deliveries.begin("a", start));
        assert!(matches!(deliveries.begin("a", start), Seen::Running));
        first.keep();
        assert!(matches!(deliveries.begin("a", start), Seen::Done));
        drop(accepted(deliveries.begin("b", start)));
        accepted(deliveries.begin("b", start)).keep();
        assert!(matches!(deliveries.begin("b", start), Seen::Done));
    }

    #[test]
    fn ids_go_after_the_window_and_the_oldest_go_beyond_the_most_kept() {
        let deliveries = Deliveries::new(Duration::from_secs(60), 2);
        let start = Instant::now();
        accepted(deliveries.begin("a", start)).keep();
        accepted(deliveries.begin("b", start + Duration::from_secs(1))).keep();
        assert!(matches!(deliveries.begin("a", start + Duration::from_secs(59)), Seen::Done));
        accepted(deliveries.begin("a", start + Duration::from_secs(60))).keep();
        accepted(deliveries.begin("c", start + Duration::from_secs(61))).keep();
        // Two kept at most: b, the oldest, made room for c.
        assert!(matches!(deliveries.begin("a", start + Duration::from_secs(62)), Seen::Done));
        assert!(matches!(deliveries.begin("b", start + Duration::from_secs(62)), Seen::New(_)));
        let memory = deliveries.memory.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(memory.ids.len() <= 2 && memory.order.len() <= 2, "{memory:?}");
    }
}
