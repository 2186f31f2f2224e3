//! # Stage 08 — the container's network
//!
//! Stage 07 plus one idea: the container gets a network, not just an empty
//! namespace with `lo` down. Before init exists run takes an address on a
//! bridge network (`--network bridge`, the default, or one made with
//! `network create`) and binds the host ports `-p` publishes; once init's
//! network namespace exists it makes the bridge `minibox0` (once), a veth
//! pair whose far end is born inside that namespace, and the NAT rules in
//! its own nftables table. init, inside, names its end `eth0`, gives it the
//! address and a default route, and binds the `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname` run wrote. `--network none`,
//! `host` and `container:NAME` are the other choices.

use anyhow::{Context, Result};
use clap::{Args, Parser};
use minibox::cgroups::{self, Cgroup, Hierarchy};
use minibox::cli::{
    self, ContainerOptions, ImageArgs, NetworkOptions, ResourceOptions, RunOptions, UserOption,
};
use minibox::config::{self, ConfigPipe, InitConfig, CONFIG_FD};
use minibox::container::{self, ContainerState, Detached, NewContainer, Verb};
use minibox::layer::{self, Layer};
use minibox::lock::ContainerLock;
use minibox::network::{self, Plan};
use minibox::process::{self, Exit, Spawn};
use minibox::sync::RunLink;
use minibox::{command, image, mounts, namespaces, rootfs, trace, volumes};
use std::convert::Infallible;
use std::os::fd::AsFd;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "08-network",
    version,
    about = "minibox stage 08: the container's network"
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
    user: UserOption,
    #[command(flatten)]
    network: NetworkOptions,
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
    args.container.user = args.user.user;
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
    cgroups::remove_stale(&hierarchy, &args.resources.cgroup_parent)?;
    layer::remove_stale(container::state::exists);
    let mut cgroup = Cgroup::create(hierarchy, &args.resources.cgroup_parent, &id, &limits)?;
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
    let shared_network = args.network.shared_namespace()?;
    config.join_network = shared_network.is_some();

    let config_pipe = ConfigPipe::new()?;
    let namespaces = args.network.namespaces(namespaces::CONTAINER);
    let mut init = Spawn::new(namespaces, stdin, args.options.terminal())
        .pass_fd(config_pipe.read_end(), CONFIG_FD)
        .pass_fds(container::log_fds(log.as_ref()))
        .pass_fds(
            shared_network
                .iter()
                .map(|fd| (fd.as_fd(), namespaces::NETNS_FD))
                .collect(),
        )
        .into_cgroup(&cgroup)
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
    run.wait_for_go("placed in its cgroup, its network plugged in")?;
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
    layer::mount_overlay(layer)?;
    for volume in &config.volumes {
        volume.mount(&layer.merged)?;
    }
    for file in &config.files {
        volumes::bind_file(&layer.merged, &file.host, &file.container)?;
    }
    rootfs::pivot_into(config.root()?)?;
    mounts::mount_proc()?;
    mounts::mount_dev()?;
    mounts::mount_sys_readonly()?;
    container::inside::prepare(&config)?;
    Ok(command::exec(&run, &config.command, &config.env)?)
}
