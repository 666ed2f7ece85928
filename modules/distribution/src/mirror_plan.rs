//! `mirror_plan`: the image mirror's plan. From the workloads a `workload_list` gives, which
//! images to copy into the mirror (each once, however many workloads use it) and which
//! containers of which workloads to point at each copy; and, for every workload it leaves
//! alone, why. References are read by this module's one parser ([`crate::reference`]), the
//! one the copy uses, so the plan and the copy never disagree on what an image is.
//!
//! Targets keep the source registry in their path (`docker.io/library/nginx:1.27` goes to
//! `MIRROR/PREFIX/docker.io/library/nginx:1.27`, `localhost:5000/a` to
//! `…/localhost_5000/a`, `[::1]:5000/a` to `…/ip6-1_5000/a`), so images of different
//! registries never collide; a reference with a digest gets a tag made of the digest.
//! Containers already on the mirror are left alone, except those this flow pointed there
//! (their original reference is in the workload's annotation): their source is checked again,
//! which costs two existence checks when nothing changed, copies again what the mirror lost,
//! and follows a tag that moved.
//!
//! It answers with a report naming every workload: patched (as the patches answered),
//! skipped with the reason, and failed with the error.
//!
//! Its `revert` input plans the way back: for each workload it pointed at the mirror, one patch
//! that gives each container still on the mirror its recorded original and removes the
//! annotations, expecting the images it saw, so a workload moved since is left alone. The
//! image-mirror-revert solution and the mirror's own revert after a long outage use it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::json;
use weir_sdk::{
    Component, Context, Description, Gauge, JsonSchema, NodeError, Port, Series, Value,
    read_message,
};

use crate::reference::Reference;

/// Where the original reference of a container goes: one annotation per container, keyed by
/// the container's name (a DNS label, unique in the pod).
pub const ORIGINAL_ANNOTATION: &str = "original.mirror.weir.dev/";
/// A workload annotated `mirror.weir.dev/skip: "true"` is left alone.
pub const SKIP_ANNOTATION: &str = "mirror.weir.dev/skip";
/// How many pull secrets of the workloads sharing an image are read to pull it: enough for any
/// pod, and a bound on a tick's Secret reads.
const MAX_SOURCE_SECRETS: usize = 10;
/// The longest repository name (host included) registries take.
const MAX_NAME: usize = 255;
/// The kinds whose pod template a patch changes; the controllers of everything else.
const PATCHABLE: [&str; 6] =
    ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "CronJob"];

/// The images of the last tick, by state: `mirrored` (in the mirror, verified) or `failed`.
pub const IMAGES: Gauge = Gauge {
    name: "weir_mirror_images",
    help: "Images the image mirror's last tick planned, by state (mirrored, failed).",
};
/// The workloads of the last tick, by kind and state: `covered` (on the mirror), `failed`
/// (an image of theirs could not be mirrored) or `skipped` (with a reason in the answer).
pub const WORKLOADS: Gauge = Gauge {
    name: "weir_mirror_workloads",
    help: "Workloads the image mirror's last tick saw, by kind and state (covered, failed, skipped).",
};
/// The kinds the workload gauge always reports, so a dashboard sees zeros, not gaps.
const KINDS: [&str; 8] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "CronJob",
    "Job",
    "Pod",
];

/// Settings of a mirror plan.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MirrorPlanSettings {
    /// The mirror registry, as host[:port], such as `registry.local:5000`.
    pub mirror: String,
    /// The repository path in the mirror that copies go under; empty for none.
    pub prefix: String,
    /// The Secret with the mirror's login, as `namespace/name` (a
    /// kubernetes.io/dockerconfigjson Secret); empty when the mirror takes anonymous pushes.
    pub mirror_secret: String,
    /// Talk to the mirror over plain HTTP.
    pub mirror_plain_http: bool,
    /// Source registries (host[:port]) reached over plain HTTP.
    pub plain_http_sources: Vec<String>,
    /// The platforms to copy, such as `linux/amd64`; empty for every platform an image has.
    pub platforms: Vec<String>,
    /// Only the workloads of these namespaces; empty for every namespace.
    pub namespaces: Vec<String>,
    /// Never mirror the workloads of these namespaces. A revert undoes the mirror wherever it
    /// changed a workload (only those carry its annotations), these namespaces included.
    pub exclude_namespaces: Vec<String>,
}

impl Default for MirrorPlanSettings {
    fn default() -> Self {
        Self {
            mirror: "registry.local:5000".to_owned(),
            prefix: "mirror".to_owned(),
            mirror_secret: String::new(),
            mirror_plain_http: false,
            plain_http_sources: Vec::new(),
            platforms: Vec::new(),
            namespaces: Vec::new(),
            exclude_namespaces: vec!["kube-system".to_owned()],
        }
    }
}

/// The workloads to plan for, as `workload_list` gives them.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Workloads {
    /// The workloads.
    pub workloads: Vec<Workload>,
    /// Whether they are every workload (a tick's list) rather than one a watch named; only
    /// then do the gauges change.
    #[serde(default)]
    pub complete: bool,
}

/// What the plan reads of a workload.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// Its kind, such as `StatefulSet`.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The controller that owns it, as `Kind/name`.
    #[serde(default)]
    pub controller: Option<String>,
    /// Its containers.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// Its init containers.
    #[serde(default)]
    pub init_containers: Vec<Container>,
    /// A Pod's ephemeral containers.
    #[serde(default)]
    pub ephemeral_containers: Vec<Container>,
    /// The pull secrets its pods use.
    #[serde(default)]
    pub pull_secrets: Vec<String>,
}

/// A container and its image.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Container {
    /// The container's name.
    pub name: String,
    /// Its image reference.
    pub image: String,
}

/// The plan: one item per source image.
#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The images to copy, by source reference.
    pub items: Vec<Item>,
    /// How many workloads are in namespaces the mirror leaves out.
    pub other_namespaces: usize,
}

/// One source image: its copy and the workloads to point at it, or why it cannot be copied.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// The source, normalised (`docker.io/library/nginx:1.27`).
    pub source: String,
    /// What `registry_copy` is asked; none when the reference is unusable.
    pub copy: Option<Value>,
    /// Why the image cannot be mirrored, when it cannot.
    pub problem: Option<String>,
    /// The Secrets to read for it: its workloads' pull secrets (group `source`) and the
    /// mirror's (group `target`).
    pub secrets: Vec<SecretToRead>,
    /// The workloads using it.
    pub workloads: Vec<Use>,
}

/// A Secret to read, and which side's login it holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
pub struct SecretToRead {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `source` or `target`.
    pub group: &'static str,
}

/// A workload's containers using an image, as the patch takes them.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Use {
    /// The workload's kind.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The image each of its containers holds now, by container name.
    pub current: BTreeMap<String, String>,
    /// The annotations recording each container's original reference.
    pub annotations: BTreeMap<String, String>,
}

/// The way back: one patch per workload the mirror changed.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct Reverts {
    /// The patches, as `workload_patch` takes them.
    pub items: Vec<Revert>,
}

/// One workload's way back.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Revert {
    /// The workload's kind.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The original image of each container still on the mirror.
    pub images: BTreeMap<String, String>,
    /// The mirror's copy each of those containers holds now; one holding another is left.
    pub expected: BTreeMap<String, String>,
    /// The mirror's annotations, each set to null (removed).
    pub annotations: BTreeMap<String, Option<String>>,
}

/// A workload (or one of its containers) the plan leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Skipped {
    /// `Kind namespace/name`.
    pub workload: String,
    /// The container, when only it is left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Why.
    pub reason: String,
}

/// What one image reference comes to, worked out once per plan however many containers name
/// it (a cluster has far fewer images than containers).
#[derive(Debug, Clone)]
struct Planned {
    /// The reference normalised, as the copy's source.
    source: String,
    /// Its registry.
    registry: String,
    /// Whether it is on the mirror already.
    on_mirror: bool,
    /// Where it goes in the mirror, or why it cannot.
    target: Result<String, String>,
}

/// The references read so far in a plan.
#[derive(Debug, Default)]
struct Plans(HashMap<String, Result<Planned, String>>);

impl Plans {
    fn of(&mut self, plan: &MirrorPlan, text: &str) -> Result<Planned, String> {
        if let Some(known) = self.0.get(text) {
            return known.clone();
        }
        let planned =
            text.parse::<Reference>().map_err(|err| err.problem).map(|reference| Planned {
                source: reference.to_string(),
                registry: reference.registry().to_owned(),
                on_mirror: reference.registry() == plan.mirror,
                target: plan.target(&reference),
            });
        self.0.insert(text.to_owned(), planned.clone());
        planned
    }
}

/// A node of the mirror plan component.
#[derive(Debug)]
pub struct MirrorPlan {
    settings: MirrorPlanSettings,
    mirror: String,
    prefix: Vec<String>,
    mirror_secret: Option<(String, String)>,
    plain_http: BTreeSet<String>,
}

impl Component for MirrorPlan {
    const NAME: &'static str = "mirror_plan";
    type Settings = MirrorPlanSettings;

    fn describe() -> Description {
        Description {
            label: "Mirror plan",
            description: "Plans an image mirror: which images of the workloads to copy into the mirror, once each, and which containers to point at each copy; answers with what was patched, skipped and failed.",
            tags: &["images", "mirror", "registry", "plan"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(_: &MirrorPlanSettings) -> Vec<Port> {
        vec![
            Port::input::<Workloads>("in"),
            Port::input::<Workloads>("revert"),
            Port::output::<Plan>("out"),
            Port::output::<Reverts>("reverts"),
        ]
    }

    fn build(settings: MirrorPlanSettings) -> Result<Self, NodeError> {
        let mirror = registry_host(&settings.mirror, "settings.mirror")?;
        let prefix: Vec<String> = settings
            .prefix
            .trim_matches('/')
            .split('/')
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect();
        for part in &prefix {
            if !path_component(part) {
                return Err(NodeError::invalid(format!(
                    "settings.prefix: {part:?} is not a repository path component (lowercase letters, digits, . _ -)"
                )));
            }
        }
        let mirror_secret = match settings.mirror_secret.as_str() {
            "" => None,
            text => match text.split('/').collect::<Vec<_>>().as_slice() {
                [namespace, name] if !namespace.is_empty() && !name.is_empty() => {
                    Some(((*namespace).to_owned(), (*name).to_owned()))
                }
                _ => {
                    return Err(NodeError::invalid(format!(
                        "settings.mirrorSecret: {text:?} is not namespace/name"
                    )));
                }
            },
        };
        let plain_http = settings
            .plain_http_sources
            .iter()
            .enumerate()
            .map(|(index, host)| {
                registry_host(host, &format!("settings.plainHttpSources[{index}]"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { settings, mirror, prefix, mirror_secret, plain_http })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let Workloads { workloads, complete } = read_message(port, message)?;
        if port == "revert" {
            return cx.emit("reverts", self.revert(&workloads)).await;
        }
        let (plan, skipped) = self.plan(&workloads);
        let encoded = serde_json::to_value(&plan)
            .map_err(|err| NodeError::internal(format!("cannot encode the plan: {err}")))?;
        let answer = cx.emit("out", encoded).await?;
        let report = report(&plan, &skipped, &answer);
        if complete {
            let (images, workloads) = tally(&plan, &report);
            cx.set_gauge(IMAGES, images)?;
            cx.set_gauge(WORKLOADS, workloads)?;
            cx.set_degraded(unmirrored(&plan, &report));
        }
        Ok(report)
    }
}

impl MirrorPlan {
    /// Whether the settings' `namespaces` take in `namespace`'s workloads.
    fn covers(&self, namespace: &str) -> bool {
        let names = &self.settings.namespaces;
        names.is_empty() || names.iter().any(|name| name == namespace)
    }

    /// Whether the mirror changes `namespace`'s workloads: covered and not excluded.
    fn mirrors_namespace(&self, namespace: &str) -> bool {
        self.covers(namespace) && !self.settings.exclude_namespaces.iter().any(|n| n == namespace)
    }

    /// The plan for `workloads`, and what it leaves alone.
    pub fn plan(&self, workloads: &[Workload]) -> (Plan, Vec<Skipped>) {
        let mut items: BTreeMap<String, Item> = BTreeMap::new();
        let mut skipped = Vec::new();
        let mut plans = Plans::default();
        let mut other_namespaces = 0;
        for workload in workloads {
            let named = format!("{} {}/{}", workload.kind, workload.namespace, workload.name);
            let skip =
                |reason: String| Skipped { workload: named.clone(), container: None, reason };
            if !self.mirrors_namespace(&workload.namespace) {
                // Out of scope rather than skipped: counted, not named (kube-system alone would
                // fill the answer).
                other_namespaces += 1;
                continue;
            }
            if workload.annotations.get(SKIP_ANNOTATION).map(String::as_str) == Some("true") {
                skipped.push(skip(format!("annotated {SKIP_ANNOTATION}=true")));
                continue;
            }
            if let Some(controller) = &workload.controller {
                let kind = controller.split('/').next().unwrap_or_default();
                // Its controller's template is what gets patched; those of other kinds
                // (operators, rollouts) are named so nobody thinks them protected.
                if !PATCHABLE.contains(&kind) && kind != "Job" {
                    skipped.push(skip(format!(
                        "controlled by {controller}, whose template the mirror does not change"
                    )));
                }
                continue;
            }
            if !PATCHABLE.contains(&workload.kind.as_str()) {
                let images: BTreeSet<&str> = workload
                    .containers
                    .iter()
                    .chain(&workload.init_containers)
                    .chain(&workload.ephemeral_containers)
                    .map(|c| c.image.as_str())
                    .collect();
                skipped.push(skip(format!(
                    "a {} that no controller owns cannot change its images ({}); give it a controller or recreate it on the mirror",
                    workload.kind,
                    images.into_iter().collect::<Vec<_>>().join(", ")
                )));
                continue;
            }
            for container in workload.containers.iter().chain(&workload.init_containers) {
                self.add_container(workload, container, &mut plans, &mut items, &mut skipped);
            }
        }
        let mut items: Vec<Item> = items.into_values().collect();
        if let Some((namespace, name)) = &self.mirror_secret {
            for item in items.iter_mut().filter(|item| item.copy.is_some()) {
                item.secrets.push(SecretToRead {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    group: "target",
                });
            }
        }
        (Plan { items, other_namespaces }, skipped)
    }

    fn add_container(
        &self,
        workload: &Workload,
        container: &Container,
        plans: &mut Plans,
        items: &mut BTreeMap<String, Item>,
        skipped: &mut Vec<Skipped>,
    ) {
        let annotation = format!("{ORIGINAL_ANNOTATION}{}", container.name);
        let mut original = &container.image;
        let mut planned = plans.of(self, &container.image);
        if planned.as_ref().is_ok_and(|p| p.on_mirror) {
            // Ours when the annotation names where it came from and the image is still the
            // copy of it.
            let from =
                workload.annotations.get(&annotation).map(|text| (text, plans.of(self, text)));
            let Some((text, Ok(from))) = from.filter(|(_, from)| {
                from.as_ref().is_ok_and(|from| {
                    from.target.as_ref().is_ok_and(|copy| {
                        container
                            .image
                            .strip_prefix(copy.as_str())
                            .is_some_and(|rest| rest.starts_with('@'))
                    })
                })
            }) else {
                skipped.push(Skipped {
                    workload: format!("{} {}/{}", workload.kind, workload.namespace, workload.name),
                    container: Some(container.name.clone()),
                    reason: "served by the mirror already".to_owned(),
                });
                return;
            };
            original = text;
            planned = Ok(from);
        }
        let usable = planned.and_then(|p| p.target.map(|target| (p.source, p.registry, target)));
        let key = match &usable {
            Ok((source, _, _)) => source.clone(),
            Err(_) => format!("unusable {}", container.image),
        };
        let item = items.entry(key).or_insert_with(|| match usable {
            Ok((source, registry, target)) => Item {
                copy: Some(json!({
                    "source": source,
                    "target": target,
                    "sourcePlainHttp": self.plain_http.contains(&registry),
                    "targetPlainHttp": self.settings.mirror_plain_http,
                    "platforms": self.settings.platforms,
                })),
                source,
                problem: None,
                secrets: Vec::new(),
                workloads: Vec::new(),
            },
            Err(problem) => Item {
                source: container.image.clone(),
                copy: None,
                problem: Some(format!("{:?}: {problem}", container.image)),
                secrets: Vec::new(),
                workloads: Vec::new(),
            },
        });
        // A workload's containers are added one after another, so if it uses this image
        // already it is the item's last use: no search through the item's uses.
        let last = item.workloads.last().is_some_and(|u| {
            (u.kind.as_str(), u.namespace.as_str(), u.name.as_str())
                == (workload.kind.as_str(), workload.namespace.as_str(), workload.name.as_str())
        });
        if !last {
            item.workloads.push(Use {
                kind: workload.kind.clone(),
                namespace: workload.namespace.clone(),
                name: workload.name.clone(),
                current: BTreeMap::new(),
                annotations: BTreeMap::new(),
            });
        }
        let at = item.workloads.len() - 1;
        item.workloads[at].current.insert(container.name.clone(), container.image.clone());
        item.workloads[at].annotations.insert(annotation, original.clone());
        if item.copy.is_none() {
            return;
        }
        for name in &workload.pull_secrets {
            let secret = SecretToRead {
                namespace: workload.namespace.clone(),
                name: name.clone(),
                group: "source",
            };
            let sources = item.secrets.iter().filter(|s| s.group == "source").count();
            if !item.secrets.contains(&secret) && sources < MAX_SOURCE_SECRETS {
                item.secrets.push(secret);
            }
        }
    }

    /// The patches that undo what the mirror did to `workloads`: those of the mirrored
    /// namespaces that carry its annotations; what a controller owns follows its controller.
    pub fn revert(&self, workloads: &[Workload]) -> Reverts {
        let on_mirror = format!("{}/", self.mirror);
        let mut items = Vec::new();
        for workload in workloads {
            // Excluded namespaces too: what the mirror changed there (with other settings, or
            // before they were excluded) is undone like the rest.
            if !self.covers(&workload.namespace)
                || !PATCHABLE.contains(&workload.kind.as_str())
                || workload.controller.is_some()
            {
                continue;
            }
            let recorded: Vec<(&String, &String)> = workload
                .annotations
                .iter()
                .filter(|(key, _)| key.starts_with(ORIGINAL_ANNOTATION))
                .collect();
            if recorded.is_empty() {
                continue;
            }
            let mut revert = Revert {
                kind: workload.kind.clone(),
                namespace: workload.namespace.clone(),
                name: workload.name.clone(),
                images: BTreeMap::new(),
                expected: BTreeMap::new(),
                annotations: BTreeMap::new(),
            };
            for (key, original) in recorded {
                let container = &key[ORIGINAL_ANNOTATION.len()..];
                let holds = workload
                    .containers
                    .iter()
                    .chain(&workload.init_containers)
                    .find(|c| c.name == container);
                if let Some(holds) = holds
                    && holds.image.to_lowercase().starts_with(&on_mirror)
                {
                    revert.images.insert(container.to_owned(), original.clone());
                    revert.expected.insert(container.to_owned(), holds.image.clone());
                }
                revert.annotations.insert(key.clone(), None);
            }
            items.push(revert);
        }
        Reverts { items }
    }

    /// Where `source` goes in the mirror.
    fn target(&self, source: &Reference) -> Result<String, String> {
        let flat: String = source
            .registry()
            .chars()
            .filter(|c| !matches!(c, '[' | ']'))
            .map(|c| if c == ':' { '_' } else { c })
            .collect();
        // An IPv6 address is marked so `[::1]:5000` (`ip6-1_5000`) never meets `1:5000`; a
        // path component cannot start with `_`.
        let registry = if source.registry().starts_with('[') {
            format!("ip6-{}", flat.trim_start_matches('_'))
        } else {
            flat
        };
        if !path_component(&registry) {
            return Err(format!(
                "{source}: its registry {} cannot be a repository path component in the mirror",
                source.registry()
            ));
        }
        let mut path: Vec<&str> = self.prefix.iter().map(String::as_str).collect();
        path.push(&registry);
        path.push(source.repository());
        let name = format!("{}/{}", self.mirror, path.join("/"));
        if name.len() > MAX_NAME {
            return Err(format!(
                "{source}: {name} is longer than the {MAX_NAME} characters a repository name may have"
            ));
        }
        let tag = match (source.digest(), source.tag()) {
            (Some(digest), _) => digest.replacen(':', "-", 1).chars().take(128).collect(),
            (None, Some(tag)) => tag.to_owned(),
            (None, None) => "latest".to_owned(),
        };
        Ok(format!("{name}:{tag}"))
    }
}

/// The tick's report: every workload patched (as the patches answered), failed (with the
/// error) and skipped (with the reason), and how many images were planned and failed.
fn report(plan: &Plan, skipped: &[Skipped], answer: &Value) -> Value {
    let mut patched = BTreeSet::new();
    let mut failed = Vec::new();
    let item_failures: BTreeMap<usize, &Value> = answer["failed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| Some((usize::try_from(f["index"].as_u64()?).ok()?, f)))
        .collect();
    for (index, item) in plan.items.iter().enumerate() {
        let workloads: Vec<String> = item
            .workloads
            .iter()
            .map(|u| format!("{} {}/{}", u.kind, u.namespace, u.name))
            .collect();
        if let Some(problem) = &item.problem {
            failed.push(json!({ "image": item.source, "workloads": workloads, "error": problem }));
        } else if let Some(failure) = item_failures.get(&index) {
            failed.push(json!({
                "image": item.source,
                "workloads": workloads,
                "kind": failure["kind"],
                "error": failure["message"],
            }));
        } else {
            collect_patches(&answer["answers"][index], &mut patched, &mut failed, &item.source);
        }
    }
    json!({
        "images": plan.items.len(),
        "patched": patched,
        "failed": failed,
        "skipped": skipped,
        "otherNamespaces": plan.other_namespaces,
    })
}

/// What a tick could not mirror, for the node's and the flow's `Degraded` condition: how many
/// images of how many, and the first few with why.
fn unmirrored(plan: &Plan, report: &Value) -> Option<String> {
    let failed: Vec<String> = report["failed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f.get("workloads").is_some())
        .map(|f| {
            format!(
                "{} ({})",
                f["image"].as_str().unwrap_or("?"),
                f["error"].as_str().unwrap_or("?")
            )
        })
        .collect();
    if failed.is_empty() {
        return None;
    }
    let shown: Vec<&str> = failed.iter().take(SHOWN_FAILURES).map(String::as_str).collect();
    let more = failed.len().saturating_sub(SHOWN_FAILURES);
    Some(format!(
        "{} of {} images cannot be mirrored: {}{}",
        failed.len(),
        plan.items.len(),
        shown.join("; "),
        if more > 0 { format!("; and {more} more") } else { String::new() }
    ))
}

/// How many failed images the condition names.
const SHOWN_FAILURES: usize = 3;

/// The gauges' series for a tick's plan and report.
fn tally(plan: &Plan, report: &Value) -> (Vec<Series>, Vec<Series>) {
    let failed_images: BTreeSet<&str> = report["failed"]
        .as_array()
        .into_iter()
        .flatten()
        // A failed patch names its image too, but that image is in the mirror.
        .filter(|f| f.get("workloads").is_some())
        .filter_map(|f| f["image"].as_str())
        .collect();
    let images = [
        (
            "mirrored",
            plan.items.iter().filter(|i| !failed_images.contains(i.source.as_str())).count(),
        ),
        ("failed", failed_images.len()),
    ];
    let mut states: BTreeMap<String, &str> = BTreeMap::new();
    for item in &plan.items {
        let failed = failed_images.contains(item.source.as_str());
        for workload in &item.workloads {
            let named = format!("{} {}/{}", workload.kind, workload.namespace, workload.name);
            let state = states.entry(named).or_insert("covered");
            if failed {
                *state = "failed";
            }
        }
    }
    for skipped in report["skipped"].as_array().into_iter().flatten() {
        let Some(workload) = skipped["workload"].as_str() else { continue };
        // A container left alone is one already on the mirror: covered, unless an image of
        // the workload failed.
        let state = if skipped.get("container").is_some() { "covered" } else { "skipped" };
        states.entry(workload.to_owned()).or_insert(state);
    }
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (workload, state) in &states {
        let kind = workload.split(' ').next().unwrap_or_default();
        *counts.entry((kind, state)).or_default() += 1;
    }
    let mut workloads = Vec::new();
    for kind in KINDS {
        for state in ["covered", "failed", "skipped"] {
            let count = counts.get(&(kind, state)).copied().unwrap_or_default();
            workloads
                .push((vec![("kind", kind.to_owned()), ("state", state.to_owned())], count as f64));
        }
    }
    let images = images
        .into_iter()
        .map(|(state, count)| (vec![("state", state.to_owned())], count as f64))
        .collect();
    (images, workloads)
}

/// Finds in an image's answer what its patches answered: the workloads patched, and the
/// patches that failed (a split's failures, whose messages name the workload).
fn collect_patches(
    answer: &Value,
    patched: &mut BTreeSet<String>,
    failed: &mut Vec<Value>,
    image: &str,
) {
    if let (Some(kind), Some(namespace), Some(name), Some(_)) = (
        answer["kind"].as_str(),
        answer["namespace"].as_str(),
        answer["name"].as_str(),
        answer["changed"].as_array(),
    ) {
        patched.insert(format!("{kind} {namespace}/{name}"));
        return;
    }
    for failure in answer["failed"].as_array().into_iter().flatten() {
        failed
            .push(json!({ "image": image, "kind": failure["kind"], "error": failure["message"] }));
    }
    for inner in answer["answers"].as_array().into_iter().flatten() {
        collect_patches(inner, patched, failed, image);
    }
}

/// A registry host as settings name it, lowercase; a scheme or path is a mistake worth saying.
fn registry_host(text: &str, field: &str) -> Result<String, NodeError> {
    crate::reference::registry_host(text).ok_or_else(|| {
        NodeError::invalid(format!(
            "{field}: {text:?} is not a registry host[:port] (no scheme, no path)"
        ))
    })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, checked through the reference parser's own grammar.
fn path_component(text: &str) -> bool {
    !text.contains('/') && format!("example.com/{text}").parse::<Reference>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planner(settings: Value) -> MirrorPlan {
        MirrorPlan::build(serde_json::from_value(settings).unwrap()).unwrap()
    }

    fn workload(kind: &str, name: &str, images: &[(&str, &str)], annotations: Value) -> Workload {
        let mut workload = json!({
            "kind": kind, "namespace": "shop", "name": name,
            "containers": images.iter().map(|(n, i)| json!({"name": n, "image": i})).collect::<Vec<_>>(),
            "pullSecrets": ["hub"],
        });
        workload["annotations"] = annotations;
        serde_json::from_value(workload).unwrap()
    }

    /// The plan's references are the copy's: a tag beside a digest is kept, Docker Hub names
    /// are made whole, and an IPv6 registry gets a valid path in the mirror.
    #[test]
    fn references_are_read_as_the_copy_reads_them() {
        let plan = planner(json!({ "mirror": "mirror.local:5000", "prefix": "m" }));
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let cases = [
            (
                "nginx",
                "docker.io/library/nginx:latest",
                "mirror.local:5000/m/docker.io/library/nginx:latest",
            ),
            (
                "bitnami/redis:7",
                "docker.io/bitnami/redis:7",
                "mirror.local:5000/m/docker.io/bitnami/redis:7",
            ),
            (
                "index.docker.io/library/nginx:1.25",
                "docker.io/library/nginx:1.25",
                "mirror.local:5000/m/docker.io/library/nginx:1.25",
            ),
            (
                &format!("nginx:1.25@{digest}"),
                &format!("docker.io/library/nginx:1.25@{digest}"),
                &format!("mirror.local:5000/m/docker.io/library/nginx:sha256-{}", &digest[7..]),
            ),
            (
                "[::1]:5000/foo",
                "[::1]:5000/foo:latest",
                "mirror.local:5000/m/ip6-1_5000/foo:latest",
            ),
            (
                "localhost:5000/a/b:2",
                "localhost:5000/a/b:2",
                "mirror.local:5000/m/localhost_5000/a/b:2",
            ),
        ];
        for (text, normalised, target) in cases {
            let reference: Reference = text.parse().unwrap();
            assert_eq!(reference.to_string(), normalised, "{text}");
            assert_eq!(plan.target(&reference).unwrap(), target, "{text}");
        }
        for bad in
            ["", "UPPER/case", "nginx@sha256:short", "a//b", "nginx:bad tag", "nginx:1@sha256:x@y"]
        {
            let (planned, _) =
                plan.plan(&[workload("Deployment", "web", &[("main", bad)], json!({}))]);
            assert!(planned.items[0].problem.is_some(), "{bad:?} should be unusable");
        }
    }

    #[test]
    fn each_image_is_copied_once_for_every_kind_that_uses_it_and_the_rest_say_why() {
        let plan = planner(
            json!({ "mirror": "mirror.local:5000", "mirrorSecret": "ops/mirror-login", "excludeNamespaces": [] }),
        );
        let mut owned = workload("ReplicaSet", "web-7f", &[("main", "nginx:1.27")], json!({}));
        owned.controller = Some("Deployment/web".to_owned());
        let mut rollout = workload("ReplicaSet", "canary-1", &[("main", "nginx:1.27")], json!({}));
        rollout.controller = Some("Rollout/canary".to_owned());
        let workloads = [
            workload(
                "Deployment",
                "web",
                &[("main", "nginx:1.27"), ("side", "envoy:1")],
                json!({}),
            ),
            workload("StatefulSet", "db", &[("main", "nginx:1.27")], json!({})),
            workload(
                "CronJob",
                "nightly",
                &[("job", "busybox:1")],
                json!({ SKIP_ANNOTATION: "true" }),
            ),
            workload("Pod", "loose", &[("main", "alpine:3")], json!({})),
            workload("DaemonSet", "agent", &[("main", "mirror.local:5000/other:1")], json!({})),
            owned,
            rollout,
        ];
        let (planned, skipped) = plan.plan(&workloads);
        let sources: Vec<&str> = planned.items.iter().map(|i| i.source.as_str()).collect();
        assert_eq!(sources, ["docker.io/library/envoy:1", "docker.io/library/nginx:1.27"]);
        let nginx = &planned.items[1];
        let users: Vec<(&str, &str)> =
            nginx.workloads.iter().map(|u| (u.kind.as_str(), u.name.as_str())).collect();
        assert_eq!(users, [("Deployment", "web"), ("StatefulSet", "db")]);
        assert_eq!(
            nginx.secrets,
            [
                SecretToRead { namespace: "shop".into(), name: "hub".into(), group: "source" },
                SecretToRead {
                    namespace: "ops".into(),
                    name: "mirror-login".into(),
                    group: "target"
                },
            ]
        );
        let reasons: Vec<String> = skipped
            .iter()
            .map(|s| format!("{} {:?}: {}", s.workload, s.container, s.reason))
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:#?}");
        assert!(
            reasons[0]
                .starts_with("CronJob shop/nightly None: annotated mirror.weir.dev/skip=true"),
            "{reasons:#?}"
        );
        assert!(reasons[1].starts_with("Pod shop/loose None: a Pod that no controller owns cannot change its images (alpine:3)"), "{reasons:#?}");
        assert_eq!(reasons[2], "DaemonSet shop/agent Some(\"main\"): served by the mirror already");
        assert!(
            reasons[3].starts_with("ReplicaSet shop/canary-1 None: controlled by Rollout/canary"),
            "{reasons:#?}"
        );
    }

    #[test]
    fn a_container_this_flow_pointed_at_the_mirror_is_checked_again_from_its_original() {
        let plan = planner(json!({ "mirror": "mirror.local:5000" }));
        let pinned = "mirror.local:5000/mirror/docker.io/library/nginx:1.27@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let ours = workload(
            "Deployment",
            "web",
            &[("main", pinned)],
            json!({ "original.mirror.weir.dev/main": "nginx:1.27" }),
        );
        let (planned, skipped) = plan.plan(&[ours]);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(planned.items[0].source, "docker.io/library/nginx:1.27");
        assert_eq!(
            planned.items[0].workloads[0].annotations["original.mirror.weir.dev/main"],
            "nginx:1.27"
        );
        assert_eq!(planned.items[0].workloads[0].current["main"], pinned);
        let elsewhere = planner(json!({ "mirror": "mirror.local:5000", "namespaces": ["ops"] }));
        let (planned, skipped) =
            elsewhere.plan(&[workload("Deployment", "web", &[("main", "nginx")], json!({}))]);
        assert!(planned.items.is_empty() && skipped.is_empty());
        assert_eq!(planned.other_namespaces, 1, "counted, not named");
    }

    #[test]
    fn a_revert_puts_back_what_the_mirror_recorded_and_removes_its_annotations() {
        let plan = planner(json!({ "mirror": "Mirror.local:5000" }));
        let sha = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let pinned = format!("mirror.local:5000/mirror/docker.io/library/nginx:1.27@{sha}");
        let migrate = format!("mirror.local:5000/mirror/ghcr.io/acme/migrate:3@{sha}");
        let mut web = workload(
            "Deployment",
            "web",
            &[("web", &pinned), ("edited", "nginx:1.28")],
            json!({
                "original.mirror.weir.dev/web": "nginx:1.27",
                "original.mirror.weir.dev/edited": "nginx:1.27",
                "original.mirror.weir.dev/migrate": "ghcr.io/acme/migrate:3",
                "original.mirror.weir.dev/gone": "redis:7",
                "team": "shop",
            }),
        );
        web.init_containers = vec![Container { name: "migrate".into(), image: migrate.clone() }];
        let untouched = workload("Deployment", "api", &[("api", "nginx:1.27")], json!({}));
        let db = || {
            workload(
                "StatefulSet",
                "db",
                &[("db", &pinned)],
                json!({ "original.mirror.weir.dev/db": "nginx:1.27" }),
            )
        };
        // What a controller owns follows its controller, and a Pod was never patched.
        let mut owned = db();
        owned.kind = "ReplicaSet".into();
        owned.controller = Some("Deployment/web".into());
        let mut pod = db();
        pod.kind = "Pod".into();
        let reverts =
            serde_json::to_value(plan.revert(&[web, untouched, db(), owned, pod])).unwrap();
        assert_eq!(
            reverts,
            json!({ "items": [{
                "kind": "Deployment", "namespace": "shop", "name": "web",
                "images": { "web": "nginx:1.27", "migrate": "ghcr.io/acme/migrate:3" },
                "expected": { "web": pinned, "migrate": migrate },
                "annotations": {
                    "original.mirror.weir.dev/edited": null,
                    "original.mirror.weir.dev/gone": null,
                    "original.mirror.weir.dev/migrate": null,
                    "original.mirror.weir.dev/web": null,
                },
            }, {
                "kind": "StatefulSet", "namespace": "shop", "name": "db",
                "images": { "db": "nginx:1.27" },
                "expected": { "db": pinned },
                "annotations": { "original.mirror.weir.dev/db": null },
            }] })
        );
        let elsewhere = planner(json!({ "mirror": "mirror.local:5000", "namespaces": ["ops"] }));
        assert!(elsewhere.revert(&[db()]).items.is_empty(), "only the namespaces asked for");
        let excluded =
            planner(json!({ "mirror": "mirror.local:5000", "excludeNamespaces": ["shop"] }));
        assert_eq!(excluded.revert(&[db()]).items.len(), 1, "what the mirror changed is undone");
    }

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        for (settings, expected) in [
            (
                json!({ "mirror": "https://mirror.local" }),
                "settings.mirror: \"https://mirror.local\" is not a registry host[:port] (no scheme, no path)",
            ),
            (
                json!({ "prefix": "Mirror" }),
                "settings.prefix: \"Mirror\" is not a repository path component (lowercase letters, digits, . _ -)",
            ),
            (
                json!({ "mirrorSecret": "just-a-name" }),
                "settings.mirrorSecret: \"just-a-name\" is not namespace/name",
            ),
            (
                json!({ "plainHttpSources": ["ok.local", "no/path"] }),
                "settings.plainHttpSources[1]: \"no/path\" is not a registry host[:port] (no scheme, no path)",
            ),
        ] {
            let err = MirrorPlan::build(serde_json::from_value(settings).unwrap()).unwrap_err();
            assert_eq!(err.message(), expected);
        }
    }

    #[test]
    fn the_report_names_what_was_patched_and_what_failed() {
        let plan = planner(json!({ "mirror": "mirror.local:5000" }));
        let (planned, skipped) = plan.plan(&[
            workload("Deployment", "web", &[("main", "nginx:1.27")], json!({})),
            workload("StatefulSet", "db", &[("main", "nginx:1.27")], json!({})),
            workload("CronJob", "nightly", &[("job", "busybox:1")], json!({})),
        ]);
        let answer = json!({
            "total": 2, "succeeded": 1,
            "failed": [{ "index": 0, "kind": "invalid", "message": "manifest unknown" }],
            "answers": [null, { "total": 2, "succeeded": 1,
                "failed": [{ "index": 1, "message": "StatefulSet shop/db moved since the plan and is left alone" }],
                "answers": [{ "kind": "Deployment", "namespace": "shop", "name": "web", "changed": ["main"] }, null] }],
        });
        let report = report(&planned, &skipped, &answer);
        assert_eq!(report["patched"], json!(["Deployment shop/web"]));
        assert_eq!(
            report["failed"][0],
            json!({ "image": "docker.io/library/busybox:1", "workloads": ["CronJob shop/nightly"], "kind": "invalid", "error": "manifest unknown" })
        );
        assert_eq!(
            unmirrored(&planned, &report).as_deref(),
            Some(
                "1 of 2 images cannot be mirrored: docker.io/library/busybox:1 (manifest unknown)"
            )
        );
        let (images, workloads) = tally(&planned, &report);
        assert_eq!(
            images,
            [
                (vec![("state", "mirrored".to_owned())], 1.0),
                (vec![("state", "failed".to_owned())], 1.0)
            ]
        );
        let count = |kind: &str, state: &str| {
            workloads
                .iter()
                .find(|(labels, _)| labels[0].1 == kind && labels[1].1 == state)
                .map(|s| s.1)
        };
        assert_eq!(count("CronJob", "failed"), Some(1.0));
        assert_eq!(count("Deployment", "covered"), Some(1.0));
        assert_eq!(count("StatefulSet", "covered"), Some(1.0));
        assert_eq!(count("Pod", "skipped"), Some(0.0));
        assert_eq!(workloads.len(), KINDS.len() * 3);
        assert_eq!(
            report["failed"][1]["error"],
            "StatefulSet shop/db moved since the plan and is left alone"
        );
    }
}
