//! A whole single-node Kubernetes for tests that run pods: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, containerd (with a private root) and runc, a kubelet
//! and kube-proxy, all inside network, PID and mount namespaces the cluster creates, every path
//! under its own run directory, with Weir's CRDs installed. The recipe, and every error it answers, is
//! ../shared/reference/real-cluster.md's.
//!
//! The namespaces' first process is a shell that waits for the test binary to go away (the
//! end of a pipe only the test binary holds), however it ends: it then writes back the kernel
//! settings the kubelet changed and exits, and the kernel kills every process of the PID
//! namespace with it (pods, shims and all); the mounts go with the mount namespace, and the
//! shell that started it all removes the empty cgroups the containers left.
//!
//! The test binary reaches the apiserver through a loopback port forwarded into the namespace,
//! and the namespace reaches a registry of the test through [`Cluster::expose_registry`]
//! (both over Unix sockets in the run directory, with socat): the host network is never
//! touched.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        Mutex, OnceLock, PoisonError,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::{Api, Client};
use rcgen::ExtendedKeyUsagePurpose;
use weir_distribution::image::{Image, Layer};

use crate::{
    Process, apiserver_args, certificate_authority, certificate_user, client_for,
    create_admin_account, create_namespace, etcd_args, free_ports, install_crds, installed, issue,
    new_run_dir, spawn, token_kubeconfig, write_kubeconfig,
};

/// The node's name and address (the bridge's own address inside the namespace).
const NODE: &str = "weir-node";
const NODE_IP: &str = "10.244.0.1";
/// The apiserver's port inside the namespace (nothing else listens there).
const APISERVER_PORT: u16 = 6443;
/// The sandbox image containerd runs each pod's network namespace in, imported at start.
const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// The kernel settings the kubelet sets (`protectKernelDefaults: false`), given back at the end.
const KERNEL_SETTINGS: [&str; 4] =
    ["vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops"];
/// How long the node may take to become Ready.
const READY_PATIENCE: Duration = Duration::from_secs(120);
/// What the Debian packages must have put in place, and where.
const HOST_TOOLS: [&str; 8] = [
    "/usr/bin/containerd",
    "/usr/bin/containerd-shim-runc-v2",
    "/usr/bin/ctr",
    "/usr/sbin/runc",
    "/usr/lib/cni/bridge",
    "/usr/lib/cni/host-local",
    "/usr/sbin/iptables",
    "/usr/bin/socat",
];
const PACKAGES: &str = "containerd runc containernetworking-plugins iptables socat busybox-static";

/// A running single-node cluster; it ends with the test binary.
#[derive(Debug)]
pub struct Cluster {
    control_plane: PathBuf,
    /// Where `scripts/node.sh` put the kubelet and the controllers.
    node: PathBuf,
    run_dir: PathBuf,
    kubeconfig: PathBuf,
    /// The loopback port the apiserver is forwarded to.
    apiserver_forward: u16,
    /// How many namespaces [`Cluster::namespace`] made.
    namespaces_made: AtomicU32,
    /// The host PID of the namespaces' first process, which `nsenter` joins.
    namespaces: u32,
    /// The write end of the pipe whose closing ends the cluster; never written.
    _lifeline: ChildStdin,
    /// The shell that created the namespaces; it outlives the test binary to clean up.
    _creator: Child,
    processes: Mutex<Vec<(String, Child)>>,
}

static SHARED: OnceLock<Cluster> = OnceLock::new();

impl Cluster {
    /// The cluster of this test binary, started on first use.
    ///
    /// # Panics
    /// When it cannot start; the message says why and where the logs are.
    pub fn shared() -> &'static Cluster {
        SHARED.get_or_init(|| {
            std::thread::spawn(|| {
                tokio::runtime::Runtime::new().map_err(anyhow::Error::from)?.block_on(Self::start())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .unwrap_or_else(|err| panic!("the test cluster did not start: {err:#}"))
        })
    }

    async fn start() -> Result<Self> {
        let started = Instant::now();
        for tool in HOST_TOOLS.iter().chain(&["/bin/busybox"]) {
            ensure!(
                Path::new(tool).exists(),
                "{tool} is missing: scripts/apt-install.sh {PACKAGES} installs it"
            );
        }
        let control_plane = installed("control-plane.sh")?;
        let node = installed("node.sh")?;
        let run_dir = new_run_dir("weir-cluster")?;
        eprintln!("cluster: logs and files in {}", run_dir.display());
        write_files(&run_dir)?;
        let (creator, lifeline, namespaces) = enter_namespaces(&run_dir)?;
        let [apiserver_forward] = free_ports()?;
        let cluster = Self {
            control_plane,
            node,
            kubeconfig: run_dir.join("admin.kubeconfig"),
            run_dir,
            apiserver_forward,
            namespaces_made: AtomicU32::new(0),
            namespaces,
            _lifeline: lifeline,
            _creator: creator,
            processes: Mutex::new(Vec::new()),
        };
        write_kubeconfig(
            &cluster.kubeconfig,
            apiserver_forward,
            &cluster.file("ca.crt"),
            &certificate_user(&cluster.file("admin.crt"), &cluster.file("admin.key")),
        )?;
        cluster.start_control_plane(apiserver_forward)?;
        let client = cluster.client().await?;
        // The controllers and the node start once the apiserver has its RBAC defaults; a
        // controller-manager that finds them missing exits.
        cluster
            .wait("the apiserver becoming ready", || async {
                let readyz = http::Request::get("/readyz").body(Vec::new())?;
                Ok(client.request_text(readyz).await?.trim() == "ok")
            })
            .await?;
        let apiserver_ready = started.elapsed();
        install_crds(&client).await?;
        cluster.start_node()?;
        let nodes: Api<Node> = Api::all(client.clone());
        cluster
            .wait("the node becoming Ready", || async {
                let node = nodes.get_opt(NODE).await?;
                Ok(node.and_then(|n| n.status?.conditions).is_some_and(|conditions| {
                    conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                }))
            })
            .await?;
        eprintln!(
            "cluster: apiserver ready {apiserver_ready:.1?} and node Ready {:.1?} after start",
            started.elapsed()
        );
        Ok(cluster)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.run_dir.join(name)
    }

    /// `command` inside the cluster's namespaces (`nsenter` joins them; the program runs as
    /// their child, so it dies with them).
    fn inside(&self, program: &Path, args: &[String]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &self.namespaces.to_string(), "-n", "-m", "-p", "--"])
            .arg(program)
            .args(args);
        command
    }

    fn start_inside(&self, name: &str, program: &Path, args: &[String]) -> Result<()> {
        let child = spawn(&self.run_dir, name, &mut self.inside(program, args))?;
        self.keep(name, child);
        Ok(())
    }

    /// etcd, the apiserver and its forward to the test binary's loopback.
    fn start_control_plane(&self, apiserver_forward: u16) -> Result<()> {
        let run = |name: &str| self.file(name).display().to_string();
        let cp = &self.control_plane;
        self.start_inside("etcd", &cp.join("etcd"), &etcd_args(&self.run_dir, 2379, 2380))?;
        let mut apiserver = apiserver_args(&self.run_dir, 2379, APISERVER_PORT);
        apiserver.extend([
            "--bind-address=0.0.0.0".to_owned(),
            format!("--advertise-address={NODE_IP}"),
            "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
            "--authorization-mode=Node,RBAC".to_owned(),
            // ServiceAccount admission stays on: pods get their account's token, as anywhere.
            "--enable-admission-plugins=NodeRestriction".to_owned(),
            // The `kubernetes` Service leads to the node's address, which pods reach.
            "--endpoint-reconciler-type=lease".to_owned(),
            format!("--kubelet-client-certificate={}", run("apiserver-kubelet.crt")),
            format!("--kubelet-client-key={}", run("apiserver-kubelet.key")),
            "--kubelet-preferred-address-types=InternalIP,Hostname".to_owned(),
        ]);
        self.start_inside("kube-apiserver", &cp.join("kube-apiserver"), &apiserver)?;
        self.start_inside(
            "forward-apiserver-inside",
            Path::new("socat"),
            &[
                format!("UNIX-LISTEN:{},fork,unlink-early", run("apiserver.sock")),
                format!("TCP:127.0.0.1:{APISERVER_PORT}"),
            ],
        )?;
        let outside = spawn(
            &self.run_dir,
            "forward-apiserver-outside",
            Command::new("socat").args([
                format!("TCP-LISTEN:{apiserver_forward},bind=127.0.0.1,fork,reuseaddr"),
                format!("UNIX-CONNECT:{}", run("apiserver.sock")),
            ]),
        )?;
        self.keep("forward-apiserver-outside", outside);
        Ok(())
    }

    /// The controllers, containerd, the kubelet and kube-proxy.
    fn start_node(&self) -> Result<()> {
        let node = &self.node;
        let run = |name: &str| self.file(name).display().to_string();
        let kubeconfigs = |name: &str| {
            [
                format!("--kubeconfig={}", run(&format!("{name}.kubeconfig"))),
                format!("--authentication-kubeconfig={}", run(&format!("{name}.kubeconfig"))),
                format!("--authorization-kubeconfig={}", run(&format!("{name}.kubeconfig"))),
            ]
        };
        let mut manager = kubeconfigs("controller-manager").to_vec();
        manager.extend([
            "--bind-address=127.0.0.1".to_owned(),
            "--leader-elect=false".to_owned(),
            format!("--service-account-private-key-file={}", run("sa.key")),
            format!("--root-ca-file={}", run("ca.crt")),
            "--use-service-account-credentials=true".to_owned(),
            "--allocate-node-cidrs=false".to_owned(),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            format!("--flex-volume-plugin-dir={}", run("controller-manager/volume-plugins")),
        ]);
        self.start_inside(
            "kube-controller-manager",
            &node.join("kube-controller-manager"),
            &manager,
        )?;
        let mut scheduler = kubeconfigs("scheduler").to_vec();
        scheduler
            .extend(["--bind-address=127.0.0.1".to_owned(), "--leader-elect=false".to_owned()]);
        self.start_inside("kube-scheduler", &node.join("kube-scheduler"), &scheduler)?;
        self.start_inside(
            "containerd",
            Path::new("/usr/bin/containerd"),
            &[format!("--config={}", run("containerd/config.toml"))],
        )?;
        self.import_pause_image()?;
        self.start_kubelet()?;
        self.start_inside(
            "kube-proxy",
            &node.join("kube-proxy"),
            &[format!("--config={}", run("kube-proxy.json"))],
        )?;
        Ok(())
    }

    /// Imports the sandbox image (a busybox that waits) into containerd once it answers.
    fn import_pause_image(&self) -> Result<()> {
        let image = busybox_image(&[
            "/bin/sh",
            "-c",
            "trap 'exit 0' TERM INT; while true; do sleep 3600 & wait $!; done",
        ])?;
        let archive = self.file("pause.tar");
        fs::write(&archive, image.oci_archive(PAUSE_IMAGE)?)?;
        let socket = self.file("containerd/containerd.sock");
        let deadline = Instant::now() + READY_PATIENCE;
        loop {
            let output = Command::new("ctr")
                .arg("--address")
                .arg(&socket)
                .args(["-n", "k8s.io", "images", "import"])
                .arg(&archive)
                .output()?;
            if output.status.success() {
                return Ok(());
            }
            self.check_alive()?;
            ensure!(
                Instant::now() < deadline,
                "cannot import the sandbox image into containerd: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls `probe` every 100 ms until it says yes; fails at once when a process of the
    /// cluster has exited, and after [`READY_PATIENCE`] with the probe's last error.
    async fn wait<F, Fut>(&self, what: &str, mut probe: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        let deadline = Instant::now() + READY_PATIENCE;
        let mut last = String::new();
        loop {
            self.check_alive()?;
            match probe().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(err) => last = format!("{err:#}"),
            }
            ensure!(
                Instant::now() < deadline,
                "{what} did not happen within {READY_PATIENCE:?} (last error: {last}); logs in {}",
                self.run_dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn keep(&self, name: &str, child: Child) {
        let mut processes = self.processes.lock().unwrap_or_else(PoisonError::into_inner);
        processes.push((name.to_owned(), child));
    }

    /// Fails, naming its log, when one of the cluster's processes has exited.
    fn check_alive(&self) -> Result<()> {
        let mut processes = self.processes.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, child) in processes.iter_mut() {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{name} of the test cluster exited with {status}; see {}",
                    self.run_dir.join(format!("{name}.log")).display()
                );
            }
        }
        Ok(())
    }

    /// The admin kubeconfig (a `system:masters` client certificate) for the apiserver's
    /// forwarded loopback port.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client with admin rights, bound to the caller's runtime.
    pub async fn client(&self) -> Result<Client> {
        client_for(&self.kubeconfig).await
    }

    /// `kubectl` with the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.control_plane.join("kubectl"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// Where the cluster's files and logs are.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Starts a process of a test on the host (a module, say), as
    /// [`crate::ControlPlane::spawn`] does: its log in the run directory, killed on drop.
    pub fn spawn(&self, name: &str, command: &mut Command) -> Result<Process> {
        let log = self.run_dir.join(format!("{name}.log"));
        Ok(Process { child: spawn(&self.run_dir, name, command)?, log })
    }

    /// Creates a namespace no other test uses, named after `prefix`, once pods may be made
    /// there (its `default` ServiceAccount exists).
    pub async fn namespace(&self, prefix: &str) -> Result<String> {
        let n = self.namespaces_made.fetch_add(1, Ordering::SeqCst);
        let name = create_namespace(&self.client().await?, &format!("{prefix}-{n}")).await?;
        self.wait_for_default_account(&name).await?;
        Ok(name)
    }

    /// A kubeconfig and its token for ServiceAccount `name` of `namespace`, created here and
    /// bound to `cluster-admin`, as [`crate::ControlPlane::admin_account`] gives.
    pub async fn admin_account(&self, namespace: &str, name: &str) -> Result<(PathBuf, String)> {
        let client = self.client().await?;
        create_admin_account(&client, namespace, name).await?;
        token_kubeconfig(&client, &self.run_dir, self.apiserver_forward, namespace, name).await
    }

    /// Makes a registry of the test on host loopback (`127.0.0.1:PORT`, plain HTTP) reachable
    /// from the node under the same name: a forward into the namespace, and containerd told to
    /// pull from it over plain HTTP.
    pub fn expose_registry(&self, host: &str) -> Result<()> {
        let port: u16 = host
            .strip_prefix("127.0.0.1:")
            .and_then(|port| port.parse().ok())
            .with_context(|| format!("registry {host:?} is not on 127.0.0.1:PORT"))?;
        let socket = self.file(&format!("registry-{port}.sock")).display().to_string();
        let outside = spawn(
            &self.run_dir,
            &format!("forward-registry-{port}-outside"),
            Command::new("socat").args([
                format!("UNIX-LISTEN:{socket},fork,unlink-early"),
                format!("TCP:127.0.0.1:{port}"),
            ]),
        )?;
        self.keep(&format!("forward-registry-{port}-outside"), outside);
        self.start_inside(
            &format!("forward-registry-{port}-inside"),
            Path::new("socat"),
            &[
                format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"),
                format!("UNIX-CONNECT:{socket}"),
            ],
        )?;
        let hosts = self.file(&format!("containerd/certs.d/{host}"));
        fs::create_dir_all(&hosts)?;
        fs::write(
            hosts.join("hosts.toml"),
            format!(
                "server = \"http://{host}\"\n[host.\"http://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
            ),
        )?;
        Ok(())
    }

    /// Waits until namespace `namespace` has its `default` ServiceAccount (the
    /// controller-manager makes it), without which no pod is admitted there.
    pub async fn wait_for_default_account(&self, namespace: &str) -> Result<()> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client().await?, namespace);
        crate::eventually("the default ServiceAccount", READY_PATIENCE, || async {
            Ok(accounts.get_opt("default").await?.map(|_| ()))
        })
        .await
    }

    /// Starts the kubelet (again, after [`Cluster::stop_kubelet`]) with the node's state as
    /// it left it.
    pub fn start_kubelet(&self) -> Result<()> {
        let run = |name: &str| self.file(name).display().to_string();
        self.start_inside(
            "kubelet",
            &self.node.join("kubelet"),
            &[
                format!("--config={}", run("kubelet/config.json")),
                format!("--kubeconfig={}", run("kubelet.kubeconfig")),
                format!("--root-dir={}", run("kubelet/root")),
                format!("--cert-dir={}", run("kubelet/certs")),
                format!("--hostname-override={NODE}"),
                format!("--node-ip={NODE_IP}"),
                "--v=1".to_owned(),
            ],
        )
    }

    /// Stops the kubelet as a crash or an upgrade of the node agent would: its pods'
    /// containers go on running under containerd.
    pub fn stop_kubelet(&self) -> Result<()> {
        let mut entered = {
            let mut processes = self.processes.lock().unwrap_or_else(PoisonError::into_inner);
            let at = processes
                .iter()
                .position(|(name, _)| name == "kubelet")
                .context("the kubelet is not running")?;
            processes.remove(at).1
        };
        // `nsenter` forked the kubelet into the namespaces and waits for it: signal the kubelet.
        let pid = entered.id();
        let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))?;
        for child in children.split_whitespace() {
            let status = Command::new("kill").args(["-TERM", child]).status()?;
            ensure!(status.success(), "kill -TERM {child} (the kubelet) failed");
        }
        entered.wait()?;
        Ok(())
    }

    /// Removes from the node's containerd every image whose name starts with `prefix`, and the
    /// content only they held, so that the next pull of any of them fetches it all again; gives
    /// back the names removed.
    pub fn forget_images(&self, prefix: &str) -> Result<Vec<String>> {
        let ctr = |args: &[&str]| -> Result<String> {
            let output = Command::new("ctr")
                .arg("--address")
                .arg(self.file("containerd/containerd.sock"))
                .args(["-n", "k8s.io"])
                .args(args)
                .output()?;
            ensure!(
                output.status.success(),
                "ctr {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
            Ok(String::from_utf8(output.stdout)?)
        };
        // `REF TYPE DIGEST …`: the CRI names an image by its reference, its repository digest
        // and its ID (`sha256:…`, not under `prefix`), all three pointing at one manifest.
        let listed = ctr(&["images", "ls"])?;
        let images: Vec<(&str, &str)> = listed
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut columns = line.split_whitespace();
                Some((columns.next()?, columns.nth(1)?))
            })
            .collect();
        let digests: Vec<&str> = images
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, digest)| *digest)
            .collect();
        let names: Vec<String> = images
            .iter()
            .filter(|(_, digest)| digests.contains(digest))
            .map(|(name, _)| (*name).to_owned())
            .collect();
        if !names.is_empty() {
            let mut args = vec!["images", "rm", "--sync"];
            args.extend(names.iter().map(String::as_str));
            ctr(&args)?;
        }
        Ok(names)
    }
}

/// An image of Debian's static busybox that runs `entrypoint`.
pub fn busybox_image(entrypoint: &[&str]) -> Result<Image> {
    let mut layer = Layer::new();
    layer.directory("bin", 0o755, (0, 0))?;
    layer.file("bin/busybox", 0o755, &fs::read("/bin/busybox").context("/bin/busybox")?)?;
    for applet in ["sh", "sleep", "echo", "cat", "ls", "wget"] {
        layer.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    layer.directory("tmp", 0o1777, (0, 0))?;
    Ok(Image {
        settings: serde_json::json!({ "Entrypoint": entrypoint, "Env": ["PATH=/bin"] }),
        layers: vec![layer.finish()],
    })
}

/// Creates the namespaces and their first process; returns the shell that made them, the pipe
/// that keeps them and the host PID of that first process.
fn enter_namespaces(run_dir: &Path) -> Result<(Child, ChildStdin, u32)> {
    let saved = run_dir.join("kernel-settings");
    let mut save = String::new();
    let mut restore = String::new();
    for setting in KERNEL_SETTINGS {
        let path = format!("/proc/sys/{setting}");
        let value = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        save.push_str(&format!("{setting}={}\n", value.trim()));
        restore.push_str(&format!("echo {} > {path}\n", value.trim()));
    }
    fs::write(&saved, save)?;
    let init = format!(
        "set -e
# Paths the kubelet, containerd and the CNI plugins use whatever they are told: private here.
for dir in /var/lib /var/log /run; do mount -t tmpfs -o mode=755 weir-cluster \"$dir\"; done
ip link set lo up
ip link add cni0 type bridge
ip addr add {NODE_IP}/24 dev cni0
ip link set cni0 up
touch {ready}
# Until the test binary is gone (it holds the pipe's other end), then the kubelet's changes back.
cat >/dev/null || true
set +e
{restore}",
        ready = run_dir.join("namespaces.ready").display(),
    );
    fs::write(run_dir.join("init.sh"), init)?;
    let outer = format!(
        "unshare --net --pid --mount --fork --mount-proc --kill-child=SIGKILL sh {init}
# Every process of the PID namespace is gone: remove the empty cgroups its containers left.
for attempt in 1 2 3 4 5; do
  find /sys/fs/cgroup/*/k8s.io -mindepth 1 -depth -type d -exec rmdir {{}} + 2>/dev/null
  rmdir /sys/fs/cgroup/*/k8s.io 2>/dev/null
  ls -d /sys/fs/cgroup/*/k8s.io >/dev/null 2>&1 || break
  sleep 1
done
echo torn down",
        init = run_dir.join("init.sh").display(),
    );
    let log = fs::File::create(run_dir.join("namespaces.log"))?;
    // A session of its own: a ^C to the test run reaches the test binary, whose end this waits for.
    let mut child = Command::new("setsid")
        .args(["sh", "-c", &outer])
        .stdin(Stdio::piped())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start unshare")?;
    let lifeline = child.stdin.take().context("no pipe to the namespaces")?;
    let ready = run_dir.join("namespaces.ready");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the namespaces ended with {status}: {}",
                fs::read_to_string(run_dir.join("namespaces.log")).unwrap_or_default()
            );
        }
        ensure!(Instant::now() < deadline, "the namespaces were not set up in 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    // sh -> unshare -> the namespaces' first process.
    let unshare = only_child(child.id())?;
    let first = only_child(unshare)?;
    Ok((child, lifeline, first))
}

fn only_child(pid: u32) -> Result<u32> {
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))?;
    let mut children = children.split_whitespace();
    let child = children.next().with_context(|| format!("process {pid} has no child"))?;
    ensure!(children.next().is_none(), "process {pid} has more than one child");
    Ok(child.parse()?)
}

/// Certificates, kubeconfigs and the configuration files of containerd, the CNI, the kubelet
/// and kube-proxy.
fn write_files(run: &Path) -> Result<()> {
    let ca = certificate_authority()?;
    let client = ExtendedKeyUsagePurpose::ClientAuth;
    let apiserver_names = [
        "127.0.0.1",
        "localhost",
        NODE_IP,
        "10.0.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ];
    let certificates = [
        (
            "apiserver",
            issue(
                &ca,
                "kube-apiserver",
                &[],
                &apiserver_names,
                ExtendedKeyUsagePurpose::ServerAuth,
            )?,
        ),
        ("admin", issue(&ca, "weir-admin", &["system:masters"], &[], client.clone())?),
        (
            "apiserver-kubelet",
            issue(&ca, "kube-apiserver-kubelet", &["system:masters"], &[], client.clone())?,
        ),
        (
            "kubelet",
            issue(&ca, &format!("system:node:{NODE}"), &["system:nodes"], &[], client.clone())?,
        ),
        (
            "kubelet-serving",
            issue(&ca, NODE, &[], &[NODE_IP, NODE], ExtendedKeyUsagePurpose::ServerAuth)?,
        ),
        (
            "controller-manager",
            issue(&ca, "system:kube-controller-manager", &[], &[], client.clone())?,
        ),
        ("scheduler", issue(&ca, "system:kube-scheduler", &[], &[], client.clone())?),
        ("kube-proxy", issue(&ca, "system:kube-proxy", &[], &[], client)?),
    ];
    fs::write(run.join("ca.crt"), ca.pem())?;
    let service_accounts = rcgen::KeyPair::generate()?;
    fs::write(run.join("sa.key"), service_accounts.serialize_pem())?;
    fs::write(run.join("sa.pub"), service_accounts.public_key_pem())?;
    for (name, (cert, key)) in &certificates {
        fs::write(run.join(format!("{name}.crt")), cert)?;
        fs::write(run.join(format!("{name}.key")), key)?;
    }
    for name in ["kubelet", "controller-manager", "scheduler", "kube-proxy"] {
        write_kubeconfig(
            &run.join(format!("{name}.kubeconfig")),
            APISERVER_PORT,
            &run.join("ca.crt"),
            &certificate_user(&run.join(format!("{name}.crt")), &run.join(format!("{name}.key"))),
        )?;
    }
    for dir in ["etcd", "containerd/certs.d", "cni/net.d", "kubelet", "controller-manager"] {
        fs::create_dir_all(run.join(dir))?;
    }
    let path = |name: &str| run.join(name).display().to_string();
    fs::write(
        run.join("containerd/config.toml"),
        format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "10010"
  disable_apparmor = true
  # Root here lacks CAP_SYS_RESOURCE, so the -998 the CRI asks for every sandbox is refused.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
        Root = "{runc}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"
"#,
            root = path("containerd/root"),
            state = path("containerd/state"),
            socket = path("containerd/containerd.sock"),
            runc = path("containerd/runc"),
            cni = path("cni/net.d"),
            certs = path("containerd/certs.d"),
        ),
    )?;
    let cni = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "weir-pods",
        "plugins": [{
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "subnet": "10.244.0.0/24",
                "gateway": NODE_IP,
                // Through the node, pods reach Service addresses (the apiserver's 10.0.0.1).
                "routes": [{ "dst": "0.0.0.0/0" }],
                "dataDir": path("cni/ipam"),
            },
        }, { "type": "loopback" }],
    });
    fs::write(run.join("cni/net.d/10-weir.conflist"), cni.to_string())?;
    let kubelet = serde_json::json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": { "enabled": false },
            "webhook": { "enabled": true },
            "x509": { "clientCAFile": path("ca.crt") },
        },
        "authorization": { "mode": "Webhook" },
        "tlsCertFile": path("kubelet-serving.crt"),
        "tlsPrivateKeyFile": path("kubelet-serving.key"),
        "containerRuntimeEndpoint": format!("unix://{}", path("containerd/containerd.sock")),
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": false,
        "enforceNodeAllocatable": [],
        "failSwapOn": false,
        "failCgroupV1": false,
        "makeIPTablesUtilChains": false,
        "podLogsDir": path("kubelet/pod-logs"),
        "volumePluginDir": path("kubelet/volume-plugins"),
        "imageGCHighThresholdPercent": 95,
        "imageGCLowThresholdPercent": 90,
        "evictionHard": { "memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%" },
        "clusterDomain": "cluster.local",
    });
    fs::write(run.join("kubelet/config.json"), kubelet.to_string())?;
    let proxy = serde_json::json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": { "kubeconfig": path("kube-proxy.kubeconfig") },
        "mode": "iptables",
        "hostnameOverride": NODE,
        "bindAddress": NODE_IP,
        "clusterCIDR": "10.244.0.0/24",
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        // Zero leaves the kernel's conntrack settings, which are not the namespace's own, alone.
        "conntrack": { "maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s" },
    });
    fs::write(run.join("kube-proxy.json"), proxy.to_string())?;
    Ok(())
}
