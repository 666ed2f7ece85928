//! The trace a run belongs to, in W3C Trace Context terms: one trace id for the whole run and a
//! span id for each delivery, with the span of the delivery that caused it, so logs, the inspect
//! stream and the exported spans of every module that a run crosses can be joined up. Across
//! modules it travels as a `traceparent` (the delivery's own span: a field of the delivery's
//! frame on a stream, or a gRPC metadata entry) and the request's `parent_span_id`.

use std::fmt;

/// Where in a trace a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The whole run's id; never zero.
    pub trace_id: u128,
    /// This delivery's id; zero for a run before its first delivery (a trigger's).
    pub span_id: u64,
    /// The delivery whose node emitted this one; zero for a run's first delivery.
    pub parent_id: u64,
}

impl Default for TraceContext {
    /// A new run, before its first delivery: what a trigger starts. A message from outside
    /// any run is that run's first delivery: `TraceContext::default().child()`.
    fn default() -> Self {
        Self { trace_id: fastrand::u128(1..), span_id: 0, parent_id: 0 }
    }
}

impl TraceContext {
    /// A delivery caused by this one, in the same trace.
    #[must_use]
    pub fn child(self) -> Self {
        Self { span_id: fastrand::u64(1..), parent_id: self.span_id, ..self }
    }

    /// Reads a `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`) as a delivery whose parent
    /// is not known yet; `None` when it is not one.
    pub fn from_traceparent(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex =
            |text: &str, len| text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(version, 2)
            || version == "ff"
            || !hex(trace, 32)
            || !hex(span, 16)
            || !hex(flags, 2)
        {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|id| *id != 0)?;
        let span_id = u64::from_str_radix(span, 16).ok().filter(|id| *id != 0)?;
        Some(Self { trace_id, span_id, parent_id: 0 })
    }

    /// The `traceparent` header for this delivery (always sampled; a delivery's span is never
    /// zero).
    pub fn traceparent(&self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace_id, self.span_id)
    }

    /// The trace id as 32 hex digits, as tracing backends show it.
    pub fn trace_hex(&self) -> TraceHex {
        TraceHex(self.trace_id)
    }
}

/// Shows a trace id as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy)]
pub struct TraceHex(u128);

impl fmt::Display for TraceHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_what_is_not_one() {
        let trace = TraceContext::default().child();
        assert_eq!(TraceContext::from_traceparent(&trace.traceparent()), Some(trace));
        let child = trace.child();
        assert_eq!((child.trace_id, child.parent_id), (trace.trace_id, trace.span_id));
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
        ] {
            assert_eq!(TraceContext::from_traceparent(bad), None, "{bad:?}");
        }
        let known = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let parsed = TraceContext::from_traceparent(known).expect("a valid traceparent");
        assert_eq!(parsed.traceparent(), known);
    }

    #[test]
    fn a_runs_first_deliveries_have_no_parent() {
        let run = TraceContext::default();
        let first = run.child();
        assert_eq!((first.parent_id, run.span_id), (0, 0));
        assert_ne!(first.span_id, 0);
        assert_eq!(first.child().parent_id, first.span_id);
    }
}
