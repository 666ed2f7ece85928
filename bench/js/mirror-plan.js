// The image mirror's plan as a js_eval script, from before the plan became the distribution
// module's mirror_plan component: kept as a realistic workload for the JS engine benchmark.
// The image-mirror plan: which images to copy into the mirror, and which containers of which
// Deployments to point at each copy. The input is deployment_list's output with the solution's
// settings; the output has one item per source image, however many Deployments use it, so
// each image is copied once per tick.
//
// Targets keep the source registry in their path (`docker.io/library/nginx:1.27` goes to
// `MIRROR/PREFIX/docker.io/library/nginx:1.27`, `registry.local:5000/a` to
// `.../registry.local_5000/a`), so images of different registries never collide; a digest
// reference gets a tag made of its digest. Containers already pointing at the mirror are left
// alone, except those this flow pointed there (they carry the annotation with their original
// reference): their source is checked again, which costs two existence checks when nothing
// changed, copies the image again if the mirror lost it, and follows a tag that moved.
export default function plan({ deployments, settings }) {
  const mirror = host(settings.mirror, "settings.mirror");
  const prefix = (settings.prefix || "").replace(/^\/+|\/+$/g, "");
  for (const part of prefix ? prefix.split("/") : []) {
    if (!COMPONENT.test(part)) throw new Error(`settings.prefix: ${JSON.stringify(part)} is not a repository path component (lowercase letters, digits, . _ -)`);
  }
  const mirrorSecret = secretRef(settings.mirrorSecret || "", "settings.mirrorSecret");
  const plainHttp = new Set((settings.plainHttpSources || []).map((h) => host(h, "settings.plainHttpSources")));
  const only = new Set(settings.namespaces || []);
  const excluded = new Set(settings.excludeNamespaces || []);

  // By item key: the item, and what was added to it (its Deployments, its Secrets).
  const items = new Map();
  // Each reference is read once, however many containers use it.
  const readings = new Map();
  const read = (text) => {
    if (!readings.has(text)) readings.set(text, parse(text));
    return readings.get(text);
  };
  const targets = new Map();
  const target = (source) => {
    if (!targets.has(source.ref)) targets.set(source.ref, targetOf(source, mirror, prefix));
    return targets.get(source.ref);
  };
  const skipped = {};
  const skip = (reason) => { skipped[reason] = (skipped[reason] || 0) + 1; };

  for (const d of deployments) {
    if ((only.size > 0 && !only.has(d.namespace)) || excluded.has(d.namespace)) {
      skip("namespace not mirrored");
      continue;
    }
    const annotations = d.annotations || {};
    const deployment = `${d.namespace}/${d.name}`;
    for (const c of d.containers.concat(d.initContainers || [])) {
      const annotation = ANNOTATION + c.name;
      let source = read(c.image);
      let original = c.image;
      if (source.ok && source.registry === mirror) {
        // Ours when the annotation names where it came from and the image is still the copy of it.
        const from = annotations[annotation] ? read(annotations[annotation]) : { ok: false };
        const copy = from.ok ? target(from) : from;
        if (!copy.ok || !c.image.startsWith(`${copy.ref}@`)) {
          skip("served by the mirror");
          continue;
        }
        source = from;
        original = annotations[annotation];
      }
      const to = source.ok ? target(source) : source;
      const key = to.ok ? source.ref : `unusable ${c.image}`;
      if (!items.has(key)) {
        const item = to.ok
          ? {
              source: source.ref,
              copy: {
                source: source.ref,
                target: to.ref,
                sourcePlainHttp: plainHttp.has(source.registry),
                targetPlainHttp: Boolean(settings.mirrorPlainHttp),
                platforms: settings.platforms || [],
              },
              secrets: [],
              deployments: [],
            }
          : { source: c.image, problem: to.problem, secrets: [], deployments: [] };
        items.set(key, { item, uses: new Map(), secrets: new Set() });
      }
      const { item, uses, secrets } = items.get(key);
      if (!uses.has(deployment)) {
        const use = { namespace: d.namespace, name: d.name, current: {}, annotations: {} };
        uses.set(deployment, use);
        item.deployments.push(use);
      }
      const use = uses.get(deployment);
      use.current[c.name] = c.image;
      use.annotations[annotation] = original;
      if (!item.copy) continue;
      for (const name of d.pullSecrets || []) {
        const secret = `${d.namespace}/${name}`;
        if (secrets.has(secret) || secrets.size >= MAX_SOURCE_SECRETS) continue;
        secrets.add(secret);
        item.secrets.push({ namespace: d.namespace, name, group: "source" });
      }
    }
  }
  const planned = [...items.values()].map((entry) => entry.item).sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
  if (mirrorSecret) {
    for (const item of planned) if (item.copy) item.secrets.push({ ...mirrorSecret, group: "target" });
  }
  return { items: planned, skipped };
}

// Where the original reference of a container goes: one annotation per container, the
// container's name (a DNS label, unique in the pod) as the key's name part.
const ANNOTATION = "original.mirror.weir.dev/";
// How many pull secrets of the Deployments sharing an image are read to pull it: enough for
// any pod, and a bound on a tick's Secret reads.
const MAX_SOURCE_SECRETS = 10;
// The grammar of references, after distribution/reference.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const HOST = /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:.]+\])(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
// The longest repository name (host included) registries take.
const MAX_NAME = 255;

// A reference normalised as the container runtime reads it: Docker Hub for names without a
// registry (`library/` for official images), `latest` when neither tag nor digest is given.
// `ref` is the canonical form; with a digest the tag is dropped, as the digest decides.
function parse(text) {
  const bad = (why) => ({ ok: false, problem: `${JSON.stringify(text)} is not an image reference: ${why}` });
  if (typeof text !== "string" || text === "") return bad("it is empty");
  const [named, digest, extra] = text.split("@");
  if (extra !== undefined) return bad("it has two @");
  if (digest !== undefined && !DIGEST.test(digest)) return bad(`${digest} is not a digest`);
  if (digest !== undefined && digest.startsWith("sha256:") && !/^sha256:[a-f0-9]{64}$/.test(digest)) return bad(`${digest} is not a sha256 digest`);
  const slash = named.lastIndexOf("/");
  const colon = named.lastIndexOf(":");
  const [name, tag] = colon > slash ? [named.slice(0, colon), named.slice(colon + 1)] : [named, undefined];
  if (tag !== undefined && !TAG.test(tag)) return bad(`${JSON.stringify(tag)} is not a tag`);
  let [registry, repository] = ["docker.io", name];
  const first = name.indexOf("/");
  if (first >= 0) {
    const head = name.slice(0, first);
    if (head.includes(".") || head.includes(":") || head === "localhost" || head !== head.toLowerCase()) {
      [registry, repository] = [head, name.slice(first + 1)];
    }
  }
  if (!HOST.test(registry)) return bad(`${registry} is not a registry host`);
  registry = registry.toLowerCase();
  if (registry === "index.docker.io" || registry === "registry-1.docker.io") registry = "docker.io";
  if (registry === "docker.io" && !repository.includes("/")) repository = `library/${repository}`;
  const wrong = repository.split("/").find((part) => !COMPONENT.test(part));
  if (wrong !== undefined) return bad(`${JSON.stringify(wrong)} is not a repository path component (lowercase letters, digits, . _ -)`);
  const path = `${registry}/${repository}`;
  const ref = digest ? `${path}@${digest}` : `${path}:${tag === undefined ? "latest" : tag}`;
  return { ok: true, registry, repository, tag: digest ? undefined : tag || "latest", digest, ref };
}

// Where a source goes in the mirror: its registry (`:` made `_`) and repository under the
// prefix, tagged as the source, or by its digest (`sha256-…`) when it names one.
function targetOf(source, mirror, prefix) {
  const registry = source.registry.replace(/[[\]]/g, "").replace(/:/g, "_");
  if (!COMPONENT.test(registry)) return { ok: false, problem: `${source.ref}: its registry ${source.registry} cannot be a repository path component in the mirror` };
  const name = [prefix, registry, source.repository].filter(Boolean).join("/");
  if (`${mirror}/${name}`.length > MAX_NAME) return { ok: false, problem: `${source.ref}: ${mirror}/${name} is longer than the ${MAX_NAME} characters a repository name may have` };
  const tag = source.digest ? source.digest.replace(":", "-").slice(0, 128) : source.tag;
  return { ok: true, ref: `${mirror}/${name}:${tag}` };
}

// A registry host as settings name it, lowercase; a scheme or path is a mistake worth saying.
function host(text, field) {
  if (typeof text !== "string" || !HOST.test(text)) throw new Error(`${field}: ${JSON.stringify(text)} is not a registry host[:port] (no scheme, no path)`);
  return text.toLowerCase();
}

// A Secret named `namespace/name`, or null for "".
function secretRef(text, field) {
  if (text === "") return null;
  const [namespace, name, extra] = text.split("/");
  if (!namespace || !name || extra !== undefined) throw new Error(`${field}: ${JSON.stringify(text)} is not namespace/name`);
  return { namespace, name };
}
