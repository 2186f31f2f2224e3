//! # Stage 10 — rootless: a user namespace
//!
//! Stage 09 plus one idea: a user namespace, so root in the container is
//! nobody on the host. Its maps say which host ids the container's ids
//! are: as host root, container 0–65535 is a range of `/etc/subuid`
//! (`--userns=remap`, the default); as an ordinary user, container root is
//! that user and the rest a range `newuidmap` grants. Capabilities inside
//! are real — over what the namespace owns, and nothing else.
//!
//! Making it takes runc's three processes: run, a child that creates the
//! user namespace and waits while run (outside it) writes its maps, and
//! the grandchild that is PID 1. The image reaches the container through
//! an idmapped mount, so its files, host root's, are container root's.

use anyhow::{Context, Result};
use clap::{Args, Parser};
use minibox::cgroups::{self, devices, Hierarchy};
use minibox::cli::{
    self, ContainerOptions, ImageArgs, NetworkOptions, ResourceOptions, RunOptions, SecurityOptions,
};
use minibox::config::{self, ConfigPipe, InitConfig, CONFIG_FD};
use minibox::container::{self, ContainerState, Detached, NewContainer, Verb};
use minibox::layer::{self, Layer};
use minibox::lock::ContainerLock;
use minibox::network::{self, Plan};
use minibox::process::{self, Exit, Spawn};
use minibox::security::sealed::SealedBinary;
use minibox::security::{self, masks, users};
use minibox::sync::RunLink;
use minibox::userns::{self, UsernsOptions};
use minibox::{command, image, mounts, namespaces, rootfs, trace, volumes};
use std::convert::Infallible;
use std::os::fd::AsFd;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "10-rootless",
    version,
    about = "minibox stage 10: rootless — a user namespace"
)]
enum Cli {
    /// Run COMMAND as PID 1 of new namespaces, in a cgroup of its own
    Run(Box<RunArgs>),
    #[command(flatten)]
    Container(Verb),
    #[command(flatten)]
    Network(network::Verb),
    /// The container's first process (started by `run`, not by hand)
    #[command(hide = true)]
    Init,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    options: RunOptions,
    #[command(flatten)]
    resources: ResourceOptions,
    #[command(flatten)]
    image: ImageArgs,
    #[command(flatten)]
    container: ContainerOptions,
    #[command(flatten)]
    network: NetworkOptions,
    #[command(flatten)]
    security: SecurityOptions,
    #[command(flatten)]
    userns: UsernsOptions,
}

fn main() -> ExitCode {
    match cli::parse::<Cli>() {
        Cli::Run(args) => cli::finish_run(run(*args)),
        Cli::Init => cli::finish_init(init()),
        Cli::Container(verb) => {
            cli::finish_run(verb.execute(&[&network::Teardown]).map_err(Into::into))
        }
        Cli::Network(verb) => cli::finish_run(verb.execute().map_err(Into::into)),
    }
}

/// The parent, on the host: start init in new namespaces, wait for it.
fn run(mut args: RunArgs) -> Result<Exit> {
    trace::start(args.options.trace);
    args.container.hide_values()?;
    process::catch_signals();
    let limits = args.resources.limits()?;
    let id = args.container.id()?;
    let hostname = args.options.hostname_or(&id)?;
    let stdin = args.options.stdin()?;
    let (image, argv) = args.container.image_and_command(&args.image)?;
    args.image.prepare_volumes()?;
    args.container.check(&args.options)?;
    // Whose ids the container's are, decided before anything exists: a
    // missing subordinate range is an error here, not a half-made container.
    let mut user_namespace = args.userns.user_namespace()?;
    userns::rootless_network(&mut args.network)?;
    args.network.check()?;
    let defaults = image::environment(
        command::container_env(&hostname, args.options.terminal()),
        &image,
    );
    let env = args.container.environment(defaults)?;

    // -d: the process splits here, before anything exists that either half
    // would own. The caller waits for word and returns; this half goes on
    // as the container's monitor.
    let monitor = match args.container.detach {
        false => None,
        true => match container::detach(&id)? {
            Detached::Caller(exit) => return Ok(exit),
            Detached::Monitor(reporter) => Some(reporter),
        },
    };

    // Whatever on the host carries this id is ours while we hold its lock.
    let _lock = ContainerLock::acquire(&id)?;

    // The container's record: from here on `ps -a` lists it.
    let mut record = ContainerState::new(NewContainer {
        id: &id,
        name: args.container.name.clone(),
        image: args.image.image_name(),
        command: &argv,
        env: env.clone(),
        hostname: &hostname,
        lower: &image,
        cgroup_parent: &args.resources.cgroup_parent,
        auto_remove: args.container.rm,
        limits: &limits,
        image_args: &args.image,
        options: &args.container,
    });
    let mut reservation = record.create()?;
    let mut config = InitConfig::new(args.options.trace, hostname, argv);
    config.env = env;
    args.container.configure(&mut config);
    image::default_workdir(&mut config, &image);

    // The cgroup exists, limits and all, before init exists.
    let hierarchy = Hierarchy::detect()?;
    // What the container may do, decided here: init only carries it out,
    // and `exec` gives its processes the same.
    let hardening = args.security.hardening(&hierarchy)?;
    hardening.save_for(&id)?;
    config.hardening = Some(hardening);
    cgroups::remove_stale(&hierarchy, &args.resources.cgroup_parent)?;
    layer::remove_stale(container::state::exists);
    // Rootless, a cgroup only where one is the user's to write.
    let mut cgroup = userns::cgroup(hierarchy, &args.resources.cgroup_parent, &id, &limits)?;
    // Where exec, stop and rm find it: rootless, below the delegated subtree.
    if !cgroup.dirs().is_empty() {
        record.cgroup_parent = cgroup.parent();
    }
    // Which devices the container may open, before init exists.
    devices::apply(&cgroup, &args.security.device_rules())?;
    let layer = Layer::create(&id, &image)?;
    config.root = Some(layer.paths().merged);
    config.layer = Some(layer.paths());
    config.volumes = args.image.volumes.clone();
    let log = monitor
        .as_ref()
        .map(|_| container::state::open_log(&id))
        .transpose()?;

    // The network, before init exists: an address, the published ports
    // held, the name files written (or another container's namespace).
    let plan = args.network.plan(&id, &record.name, &config.hostname)?;
    config.network = plan.as_ref().map(Plan::inside);
    config.files = plan.as_ref().map(Plan::files).unwrap_or_default();
    // The layer, for a root that is not the host's: upper/ becomes
    // container root's, and init will reach it from inside its directory.
    if let Some(userns) = user_namespace.as_mut() {
        userns.prepare_layer(&mut config)?;
    }
    let shared_network = args.network.shared_namespace()?;
    config.join_network = shared_network.is_some();

    // init runs this binary inside the container until it execs: from a
    // read-only mount of it that nothing else can reach (CVE-2019-5736).
    let binary = SealedBinary::open()?;
    let config_pipe = ConfigPipe::new()?;
    let namespaces = args.network.namespaces(namespaces::CONTAINER);
    let mut init = Spawn::new(namespaces, stdin, args.options.terminal())
        .from_sealed_binary(&binary)
        .pass_fd(config_pipe.read_end(), CONFIG_FD)
        .pass_fds(container::log_fds(log.as_ref()))
        .pass_fds(
            shared_network
                .iter()
                .map(|fd| (fd.as_fd(), namespaces::NETNS_FD))
                .collect(),
        )
        .into_cgroup(&cgroup)
        .in_user_namespace(user_namespace.as_ref())
        .start()
        .context("cannot start the container")?;
    config_pipe.send(&config)?;
    cgroup.add_process(init.pid)?;
    // init's network namespace exists now: plug it in.
    let mut attachment = plan.map(|plan| plan.connect(init.pid)).transpose()?;
    init.release()?;

    init.wait_for_exec()?;
    record.started(init.pid)?;
    reservation.keep();
    if let Some(monitor) = monitor {
        monitor.started();
        container::release_terminal()?;
    }

    let exit = init.wait()?;
    let oom_kills = cgroup.oom_kills();
    cgroup.remove()?;
    if let Some(attachment) = attachment.as_mut() {
        attachment.detach()?;
    }
    // Kept for `logs`, `commit` and `ps -a` until `rm`; with --rm, gone now.
    record.exited(exit, oom_kills > 0)?;
    trace::flush();
    match args.resources.oom_error(oom_kills) {
        Some(oom) => Err(oom.into()),
        None => Ok(exit),
    }
}

/// The child, PID 1 of its namespaces: set up, then become the command.
fn init() -> Result<Infallible> {
    let run = RunLink::connect()?;
    let config = config::receive(CONFIG_FD)?;
    run.follow_trace_mode(&config);
    let hardening = config.hardening.clone().unwrap_or_default();
    // Before anything else: nothing in the container may open this
    // process (still the host's minibox binary) through /proc.
    security::protect_init(hardening.oom_score_adj)?;
    run.wait_for_go("placed in its cgroup, its network plugged in")?;
    // Its cgroup is the cgroup namespace's root from now on.
    if hardening.cgroup_namespace {
        security::enter_cgroup_namespace()?;
    }
    if config.join_network {
        namespaces::join_network()?;
    }
    if let Some(inside) = &config.network {
        network::configure_inside(inside)?;
    }
    namespaces::set_hostname(&config.hostname)?;
    mounts::make_mount_tree_private()?;
    let layer = config
        .layer
        .as_ref()
        .context("InitConfig without a layer")?;
    userns::mounts::mount_overlay(layer)?;
    for volume in &config.volumes {
        volume.mount(&layer.merged)?;
    }
    for file in &config.files {
        volumes::bind_file(&layer.merged, &file.host, &file.container)?;
    }
    // In a user namespace: proc and sysfs only while the host's are still
    // here to compare with, and /dev nodes bound from the host's (mknod is
    // refused) — so all three before pivot_root.
    userns::mounts::mount_proc(&layer.merged)?;
    userns::mounts::mount_sys(&layer.merged)?;
    userns::mounts::mount_dev(&layer.merged, &hardening.devices)?;
    rootfs::pivot_into(config.root()?)?;
    security::mount_ipc_filesystems()?;
    if hardening.cgroup_namespace {
        security::mount_cgroup_readonly()?;
    }
    security::set_sysctls(&hardening.sysctls)?;
    if !hardening.privileged {
        masks::mask(&masks::MASKED)?;
        masks::read_only(&masks::READ_ONLY)?;
    }
    // --tmpfs, --ulimit, -w: while the root is writable and init still
    // holds every capability.
    container::inside::prepare(&config)?;
    if hardening.read_only_root {
        security::make_root_read_only()?;
    }

    // Least privilege, last, in the kernel's order: the bounding set, no
    // new privileges, the seccomp filter (installing one takes
    // no_new_privs or CAP_SYS_ADMIN, which init keeps in its effective set
    // until the user changes or it execs), then the user.
    let user = hardening
        .user
        .as_ref()
        .map(users::resolve_in_root)
        .transpose()?;
    hardening.drop_privileges(user.as_ref())?;
    Ok(command::exec(&run, &config.command, &config.env)?)
}
