//! Which namespaces a process of Weir's works in: its home, where the `Module` resources and
//! leader-election Leases live, and the namespace whose flows it runs and checks, or every
//! namespace. A cluster installation is namespace-scoped unless told otherwise, so that its
//! permissions can be a Role rather than a ClusterRole.

use weir_model::Kind;

/// Where a process reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Where modules publish their catalogues and replicas elect their leaders.
    pub home: String,
    /// The namespace whose flows are watched; `None` for every namespace.
    pub flows: Option<String>,
}

impl Scope {
    /// The home namespace and its flows, or the flows of every namespace when `all` is set.
    pub fn new(home: &str, all_namespaces: bool) -> Self {
        Self { home: home.to_owned(), flows: (!all_namespaces).then(|| home.to_owned()) }
    }

    /// The namespace to read objects of `kind` in; `None` for every namespace.
    pub fn of(&self, kind: Kind) -> Option<String> {
        match kind {
            Kind::Module => Some(self.home.clone()),
            Kind::Flow | Kind::FlowNode => self.flows.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_read_at_home_and_flows_where_the_scope_says() {
        let narrow = Scope::new("weir", false);
        assert_eq!(narrow.of(Kind::Module).as_deref(), Some("weir"));
        assert_eq!(narrow.of(Kind::FlowNode).as_deref(), Some("weir"));
        let wide = Scope::new("weir", true);
        assert_eq!(wide.of(Kind::Module).as_deref(), Some("weir"));
        assert_eq!(wide.of(Kind::Flow), None);
    }
}
