//! A real Kubernetes control plane for integration tests: etcd and kube-apiserver built from
//! source by `scripts/control-plane.sh` (once per machine, cached outside the clone), started on
//! free loopback ports with freshly generated certificates, with Weir's CRDs installed.
//!
//! [`ControlPlane::shared`] starts one per test binary; every test of that binary shares it and
//! isolates itself in its own namespaces. The processes die with the test binary, however it
//! exits (they run under `setpriv --pdeathsig KILL`), and their logs stay in the run directory
//! it prints, the last few runs kept, so a failure can be read afterwards.

// Where the control plane runs is told on stderr, which the test harness shows with a failure.
#![allow(clippy::print_stderr)]

mod cluster;
pub mod solution;

pub use cluster::{Cluster, busybox_image};

use std::{
    collections::BTreeMap,
    fs,
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex, OnceLock, PoisonError,
        atomic::{AtomicU32, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::{
    api::{
        authentication::v1::{TokenRequest, TokenRequestSpec},
        core::v1::{Namespace, ServiceAccount},
        rbac::v1::ClusterRoleBinding,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Config,
    api::{Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// How long the apiserver may take to become ready before the start counts as failed.
const READY_PATIENCE: Duration = Duration::from_secs(90);
/// How many finished runs keep their logs.
const RUNS_KEPT: usize = 5;

/// A running etcd and kube-apiserver.
#[derive(Debug)]
pub struct ControlPlane {
    bin: PathBuf,
    run_dir: PathBuf,
    kubeconfig: PathBuf,
    apiserver_port: u16,
    ca: CertifiedIssuer<'static, KeyPair>,
    apiserver: Mutex<Child>,
    _etcd: Child,
    namespaces: AtomicU32,
}

static SHARED: OnceLock<ControlPlane> = OnceLock::new();

/// A process a test started with [`ControlPlane::spawn`]; killed on drop.
#[derive(Debug)]
pub struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Its process id (the program's own: `setpriv` replaces itself with it).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL), as a crash or an OOM kill would, and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Asks the process to stop (SIGTERM), as Kubernetes does, and waits up to `patience`;
    /// true when it exited in time.
    pub fn terminate(&mut self, patience: Duration) -> Result<bool> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(false)
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ControlPlane {
    /// The control plane of this test binary, started on first use.
    ///
    /// # Panics
    /// When it cannot start; the message says why and where the logs are.
    pub fn shared() -> &'static ControlPlane {
        SHARED.get_or_init(|| {
            // Setup needs its own runtime: the caller may be inside a test's runtime.
            std::thread::spawn(|| {
                tokio::runtime::Runtime::new().map_err(anyhow::Error::from)?.block_on(Self::start())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .unwrap_or_else(|err| panic!("the test control plane did not start: {err:#}"))
        })
    }

    async fn start() -> Result<Self> {
        let started = Instant::now();
        let bin = build_binaries()?;
        let run_dir = new_run_dir("weir-control-plane")?;
        eprintln!("control plane: logs and files in {}", run_dir.display());
        let pki = Pki::generate()?;
        pki.write(&run_dir)?;
        let [etcd_client, etcd_peer, apiserver_port] = free_ports()?;
        let etcd = spawn(
            &run_dir,
            "etcd",
            Command::new(bin.join("etcd")).args(etcd_args(&run_dir, etcd_client, etcd_peer)),
        )?;
        let kubeconfig = run_dir.join("admin.kubeconfig");
        write_kubeconfig(
            &kubeconfig,
            apiserver_port,
            &run_dir.join("ca.crt"),
            &certificate_user(&run_dir.join("admin.crt"), &run_dir.join("admin.key")),
        )?;
        let plane = Self {
            apiserver: Mutex::new(spawn_apiserver(&bin, &run_dir, etcd_client, apiserver_port)?),
            bin,
            run_dir,
            kubeconfig,
            apiserver_port,
            ca: pki.ca,
            _etcd: etcd,
            namespaces: AtomicU32::new(0),
        };
        plane.wait_ready().await?;
        let ready = started.elapsed();
        install_crds(&plane.client().await?).await?;
        eprintln!(
            "control plane: apiserver ready on https://127.0.0.1:{apiserver_port} {ready:.1?} after start, CRDs established after {:.1?}",
            started.elapsed()
        );
        Ok(plane)
    }

    /// Starts a process of a test (a module, say) the way the control plane's own run: its
    /// output goes to `<name>.log` in the run directory, it is killed when the returned
    /// [`Process`] drops, and the kernel kills it if the test binary dies first.
    pub fn spawn(&self, name: &str, command: &mut Command) -> Result<Process> {
        let log = self.run_dir.join(format!("{name}.log"));
        Ok(Process { child: spawn(&self.run_dir, name, command)?, log })
    }

    /// The admin kubeconfig (a `system:masters` client certificate).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client with admin rights, bound to the caller's runtime.
    pub async fn client(&self) -> Result<Client> {
        client_for(&self.kubeconfig).await
    }

    /// `kubectl` with the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.bin.join("kubectl"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// A kubeconfig for a user with no rights but those RBAC grants it: a client certificate
    /// with common name `user` and the given groups.
    pub fn identity(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let dir = self.run_dir.join("identities").join(user);
        fs::create_dir_all(&dir)?;
        let (cert, key) = issue(&self.ca, user, groups, &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        fs::write(dir.join("client.crt"), cert)?;
        fs::write(dir.join("client.key"), key)?;
        let path = dir.join("kubeconfig");
        write_kubeconfig(
            &path,
            self.apiserver_port,
            &self.run_dir.join("ca.crt"),
            &certificate_user(&dir.join("client.crt"), &dir.join("client.key")),
        )?;
        Ok(path)
    }

    /// A kubeconfig for ServiceAccount `name` of `namespace`, signing in with a token from the
    /// TokenRequest API, as a pod of that account would; also the token, for a test that
    /// sends it itself. The account must exist.
    pub async fn service_account(&self, namespace: &str, name: &str) -> Result<(PathBuf, String)> {
        let client = self.client().await?;
        token_kubeconfig(&client, &self.run_dir, self.apiserver_port, namespace, name).await
    }

    /// A kubeconfig and its token for ServiceAccount `name` of `namespace`, created here and
    /// bound to `cluster-admin`: Weir's processes in a cluster sign in with a token (as a pod
    /// does), which modules check, where the admin's client certificate cannot be passed on.
    pub async fn admin_account(&self, namespace: &str, name: &str) -> Result<(PathBuf, String)> {
        let client = self.client().await?;
        create_admin_account(&client, namespace, name).await?;
        token_kubeconfig(&client, &self.run_dir, self.apiserver_port, namespace, name).await
    }

    /// The CA certificate the apiserver's serving certificate is signed by (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.run_dir.join("ca.crt")
    }

    /// The apiserver's URL.
    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }

    /// Creates a namespace no other test uses, named after `prefix`.
    pub async fn namespace(&self, prefix: &str) -> Result<String> {
        let n = self.namespaces.fetch_add(1, Ordering::SeqCst);
        create_namespace(&self.client().await?, &format!("{prefix}-{n}")).await
    }

    /// Kills kube-apiserver and starts it again on the same port and etcd, as a crash and a
    /// restart would; returns once it is ready.
    pub async fn restart_apiserver(&self) -> Result<()> {
        let etcd_client = fs::read_to_string(self.run_dir.join("etcd.port"))?.trim().parse()?;
        {
            let mut child = self.apiserver.lock().unwrap_or_else(PoisonError::into_inner);
            child.kill()?;
            child.wait()?;
            *child = spawn_apiserver(&self.bin, &self.run_dir, etcd_client, self.apiserver_port)?;
        }
        self.wait_ready().await
    }

    async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_PATIENCE;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(status) =
                self.apiserver.lock().unwrap_or_else(PoisonError::into_inner).try_wait()?
            {
                bail!(
                    "kube-apiserver exited with {status}; see {}",
                    self.run_dir.join("kube-apiserver.log").display()
                );
            }
            match self.client().await {
                Ok(client) => {
                    let request = http_get("/readyz")?;
                    match client.request_text(request).await {
                        Ok(body) if body.trim() == "ok" => return Ok(()),
                        Ok(body) => last = body,
                        Err(err) => last = err.to_string(),
                    }
                }
                Err(err) => last = format!("{err:#}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "kube-apiserver was not ready after {READY_PATIENCE:?} ({last}); see {}",
            self.run_dir.display()
        )
    }
}

/// Applies Weir's CRDs and waits until the apiserver serves them.
async fn install_crds(client: &Client) -> Result<()> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let params = PatchParams::apply("weir-testenv").force();
    for kind in weir_model::Kind::ALL {
        let crd = kind.crd();
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        crds.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("cannot apply CRD {name}"))?;
    }
    let deadline = Instant::now() + READY_PATIENCE;
    for kind in weir_model::Kind::ALL {
        let name = kind.crd().metadata.name.unwrap_or_default();
        loop {
            let crd = crds.get(&name).await?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            ensure!(Instant::now() < deadline, "CRD {name} was not established in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Creates namespace `name`.
async fn create_namespace(client: &Client, name: &str) -> Result<String> {
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": name } }))?;
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await?;
    Ok(name.to_owned())
}

/// A kubeconfig in `run_dir` for ServiceAccount `name` of `namespace` on the apiserver at
/// loopback `port`, signing in with a token from the TokenRequest API; also the token.
async fn token_kubeconfig(
    client: &Client,
    run_dir: &Path,
    port: u16,
    namespace: &str,
    name: &str,
) -> Result<(PathBuf, String)> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answer = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("cannot get a token for ServiceAccount {namespace}/{name}"))?;
    let token = answer.status.context("the TokenRequest has no status")?.token;
    let dir = run_dir.join("identities").join(format!("{namespace}-{name}"));
    fs::create_dir_all(&dir)?;
    let path = dir.join("kubeconfig");
    let user = serde_json::json!({ "token": token });
    write_kubeconfig(&path, port, &run_dir.join("ca.crt"), &user)?;
    Ok((path, token))
}

/// Creates ServiceAccount `name` of `namespace` and binds it to `cluster-admin`.
async fn create_admin_account(client: &Client, namespace: &str, name: &str) -> Result<()> {
    let account: ServiceAccount = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "namespace": namespace },
    }))?;
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &account)
        .await
        .with_context(|| format!("cannot create ServiceAccount {namespace}/{name}"))?;
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": { "name": format!("{namespace}-{name}") },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
            "name": "cluster-admin" },
        "subjects": [{ "kind": "ServiceAccount", "name": name, "namespace": namespace }],
    }))?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .with_context(|| format!("cannot make {namespace}/{name} a cluster admin"))?;
    Ok(())
}

/// A client for a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

fn http_get(path: &str) -> Result<http::Request<Vec<u8>>> {
    Ok(http::Request::get(path).body(Vec::new())?)
}

/// Builds (or finds in the cache) the binaries; returns their directory.
fn build_binaries() -> Result<PathBuf> {
    installed("control-plane.sh")
}

/// `helm`, built by `scripts/helm.sh` through the Go module proxy (once per machine, cached
/// outside the clone).
pub fn helm() -> Result<Command> {
    Ok(Command::new(installed("helm.sh")?.join("helm")))
}

/// Runs an install script of `scripts/` (which does nothing when its tools are cached) and
/// returns the directory it names on its last line of output.
fn installed(script: &str) -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts").join(script);
    let output = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    ensure!(output.status.success(), "{} failed with {}", script.display(), output.status);
    let stdout = String::from_utf8(output.stdout)?;
    let bin = stdout
        .lines()
        .last()
        .with_context(|| format!("{} printed no directory", script.display()))?;
    Ok(PathBuf::from(bin))
}

/// A run directory of its own under `$TMPDIR/<kind>`; old runs beyond the last few are removed.
fn new_run_dir(kind: &str) -> Result<PathBuf> {
    let base = std::env::temp_dir().join(kind);
    fs::create_dir_all(&base)?;
    let mut runs: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(&base)?
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    runs.sort();
    let excess = runs.len().saturating_sub(RUNS_KEPT);
    for (_, old) in runs.into_iter().take(excess) {
        let _ = fs::remove_dir_all(old);
    }
    let dir = base.join(format!("run-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("etcd"))?;
    Ok(dir)
}

fn free_ports<const N: usize>() -> Result<[u16; N]> {
    // Hold all listeners until every port is known, so the kernel hands out distinct ones.
    let listeners: Vec<TcpListener> =
        (0..N).map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0))).collect::<Result<_, _>>()?;
    let ports: Vec<u16> =
        listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
    ports.try_into().map_err(|_| anyhow::anyhow!("wrong number of ports"))
}

fn spawn_apiserver(bin: &Path, run_dir: &Path, etcd_client: u16, port: u16) -> Result<Child> {
    fs::write(run_dir.join("etcd.port"), etcd_client.to_string())?;
    spawn(
        run_dir,
        "kube-apiserver",
        Command::new(bin.join("kube-apiserver"))
            .args(apiserver_args(run_dir, etcd_client, port))
            .args([
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                "--endpoint-reconciler-type=none",
            ]),
    )
}

fn etcd_args(run_dir: &Path, client: u16, peer: u16) -> Vec<String> {
    vec![
        "--name=weir-test".to_owned(),
        format!("--data-dir={}", run_dir.join("etcd").display()),
        format!("--listen-client-urls=http://127.0.0.1:{client}"),
        format!("--advertise-client-urls=http://127.0.0.1:{client}"),
        format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
        format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
        format!("--initial-cluster=weir-test=http://127.0.0.1:{peer}"),
        "--unsafe-no-fsync".to_owned(),
        "--heartbeat-interval=10".to_owned(),
        "--election-timeout=100".to_owned(),
        "--log-level=warn".to_owned(),
    ]
}

/// The flags a control plane's apiserver and a cluster's share; each adds where it listens,
/// how it authorizes and which admission plugins it runs.
fn apiserver_args(run_dir: &Path, etcd_client: u16, port: u16) -> Vec<String> {
    let file = |name: &str| run_dir.join(name).display().to_string();
    vec![
        format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", file("apiserver")),
        format!("--tls-cert-file={}", file("apiserver.crt")),
        format!("--tls-private-key-file={}", file("apiserver.key")),
        format!("--client-ca-file={}", file("ca.crt")),
        format!("--service-account-issuer=https://127.0.0.1:{port}"),
        format!("--service-account-key-file={}", file("sa.pub")),
        format!("--service-account-signing-key-file={}", file("sa.key")),
        "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
        "--allow-privileged=true".to_owned(),
        "--profiling=false".to_owned(),
    ]
}

/// Starts a process whose output goes to `<name>.log` in the run directory and which the kernel
/// kills when the test binary exits.
fn spawn(run_dir: &Path, name: &str, command: &mut Command) -> Result<Child> {
    let log_path = run_dir.join(format!("{name}.log"));
    let log = fs::File::options().create(true).append(true).open(&log_path)?;
    let mut wrapped = Command::new("setpriv");
    wrapped.args(["--pdeathsig", "KILL", "--"]).arg(command.get_program()).args(command.get_args());
    // The environment the caller set (a module's KUBECONFIG, say) goes along.
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    keeper().spawn(wrapped).with_context(|| format!("cannot start {name}"))
}

/// The parent-death signal fires when the *thread* that forked the child ends, so children are
/// forked from one thread that lives as long as the test binary.
struct Keeper {
    requests: Mutex<mpsc::Sender<(Command, mpsc::Sender<std::io::Result<Child>>)>>,
}

impl Keeper {
    fn spawn(&self, command: Command) -> Result<Child> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send((command, reply))
            .map_err(|_| anyhow::anyhow!("the process keeper thread is gone"))?;
        Ok(answer.recv()??)
    }
}

fn keeper() -> &'static Keeper {
    static KEEPER: OnceLock<Keeper> = OnceLock::new();
    KEEPER.get_or_init(|| {
        let (requests, incoming) =
            mpsc::channel::<(Command, mpsc::Sender<std::io::Result<Child>>)>();
        std::thread::spawn(move || {
            for (mut command, reply) in incoming {
                let _ = reply.send(command.spawn());
            }
        });
        Keeper { requests: Mutex::new(requests) }
    })
}

/// The certificates and keys of one control plane.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    files: Vec<(&'static str, String)>,
}

impl Pki {
    fn generate() -> Result<Self> {
        let ca = certificate_authority()?;
        let serving = issue(
            &ca,
            "kube-apiserver",
            &[],
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let admin = issue(
            &ca,
            "weir-admin",
            &["system:masters"],
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let service_accounts = KeyPair::generate()?;
        let files = vec![
            ("ca.crt", ca.pem()),
            ("apiserver.crt", serving.0),
            ("apiserver.key", serving.1),
            ("admin.crt", admin.0),
            ("admin.key", admin.1),
            ("sa.key", service_accounts.serialize_pem()),
            ("sa.pub", service_accounts.public_key_pem()),
        ];
        Ok(Self { ca, files })
    }

    fn write(&self, dir: &Path) -> Result<()> {
        for (name, content) in &self.files {
            fs::write(dir.join(name), content)?;
        }
        Ok(())
    }
}

fn certificate_authority() -> Result<CertifiedIssuer<'static, KeyPair>> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "weir-test-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(CertifiedIssuer::self_signed(params, KeyPair::generate()?)?)
}

/// A certificate for `common_name` in `groups` (organisations, as Kubernetes reads them),
/// naming `addresses` (IPs or DNS names), signed by `ca`: its PEM and its key's.
fn issue(
    ca: &CertifiedIssuer<'static, KeyPair>,
    common_name: &str,
    groups: &[&str],
    addresses: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let addresses: Vec<String> = addresses.iter().map(|a| (*a).to_owned()).collect();
    let mut params = CertificateParams::new(addresses)?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    for group in groups {
        params.distinguished_name.push(DnType::OrganizationName, *group);
    }
    params.extended_key_usages = vec![usage];
    Ok((params.signed_by(&key, ca)?.pem(), key.serialize_pem()))
}

/// A kubeconfig user that signs in with a client certificate.
fn certificate_user(cert: &Path, key: &Path) -> serde_json::Value {
    serde_json::json!({ "client-certificate": cert, "client-key": key })
}

/// Writes a kubeconfig for the apiserver on `port`, signing in as `user` (a kubeconfig `user`
/// entry: a certificate or a token).
fn write_kubeconfig(path: &Path, port: u16, ca: &Path, user: &serde_json::Value) -> Result<()> {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "weir-test", "cluster": {
            "server": format!("https://127.0.0.1:{port}"),
            "certificate-authority": ca,
        } }],
        "users": [{ "name": "user", "user": user }],
        "contexts": [{ "name": "weir-test", "context": { "cluster": "weir-test", "user": "user" } }],
        "current-context": "weir-test",
    });
    // JSON is YAML, which is what kubectl and kube-rs read.
    fs::write(path, serde_json::to_string_pretty(&config)?)?;
    Ok(())
}

/// Polls `probe` every 50 ms until it gives a value, failing after `patience` with `what` and
/// the last error the probe met (an error is not final: the thing awaited may still come).
pub async fn eventually<T, F, Fut>(what: &str, patience: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let started = std::time::Instant::now();
    let mut last = String::new();
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(err) => last = format!("{err:#}"),
        }
        if started.elapsed() > patience {
            anyhow::bail!("{what} did not happen within {patience:?}; last error: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a namespaced object of kind `K` from JSON, as a test sets the scene.
pub async fn create<K>(
    client: &kube::Client,
    namespace: &str,
    object: serde_json::Value,
) -> Result<()>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: kube::Api<K> = kube::Api::namespaced(client.clone(), namespace);
    api.create(&kube::api::PostParams::default(), &serde_json::from_value(object)?).await?;
    Ok(())
}

/// The kube-apiserver's request counters (`apiserver_request_total`), summed by verb and
/// resource (`PATCH deployments.apps`).
pub async fn apiserver_requests(client: &kube::Client) -> Result<BTreeMap<String, u64>> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let mut counts = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let (labels, value) = line.rsplit_once(' ').context("a sample")?;
        let label = |name: &str| {
            labels
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_owned()
        };
        let (group, resource, subresource) =
            (label("group"), label("resource"), label("subresource"));
        let mut what = if group.is_empty() { resource } else { format!("{resource}.{group}") };
        if !subresource.is_empty() {
            what = format!("{what}/{subresource}");
        }
        *counts.entry(format!("{} {what}", label("verb"))).or_insert(0) +=
            value.parse::<f64>()? as u64;
    }
    Ok(counts)
}

/// Runs `command`, which should exit by itself within `patience` (a server refusing to start,
/// say); gives back whether it succeeded and its standard error. One still running then is
/// killed by PID and is an error saying `what` it should not have done.
pub async fn exits_within(
    command: &mut Command,
    patience: Duration,
    what: &str,
) -> Result<(bool, String)> {
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let since = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if since.elapsed() > patience {
            child.kill()?;
            child.wait()?;
            bail!("{what}: still running after {patience:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().context("stderr")?, &mut stderr)?;
    Ok((status.success(), stderr))
}
