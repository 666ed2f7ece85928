// The image-mirror plan: for every container and init container of every Deployment, the
// image to copy into the local registry and where it goes. Images already in the registry are
// skipped; an image used in several places is copied once.
export default function plan(input) {
  const registry = input.registry;
  const seen = new Map();
  for (const d of input.deployments) {
    const all = [
      ...d.containers.map((c) => ({ ...c, init: false })),
      ...(d.initContainers || []).map((c) => ({ ...c, init: true })),
    ];
    for (const c of all) {
      if (c.image.startsWith(registry + "/")) continue;
      let ref = c.image;
      if (!ref.includes("/")) ref = "docker.io/library/" + ref;
      else if (!ref.split("/")[0].includes(".")) ref = "docker.io/" + ref;
      const target = registry + "/" + ref.slice(ref.indexOf("/") + 1);
      const use = { namespace: d.namespace, deployment: d.name, container: c.name, init: c.init };
      const known = seen.get(ref);
      if (known) known.uses.push(use);
      else seen.set(ref, { source: ref, target, pullSecrets: d.pullSecrets || [], uses: [use] });
    }
  }
  return { images: [...seen.values()] };
}
