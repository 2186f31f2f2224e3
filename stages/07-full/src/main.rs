//! # Stage 07 — a small docker: containers that outlive their command
//!
//! Stage 06 plus one idea: a container outlives the command that started
//! it. Each container gets a record on disk (`state.json`, written
//! atomically), a name and an environment (`-e`); with `-d` the process
//! splits before anything is created: the caller prints the container id
//! and returns, and the other half stays behind as the container's
//! *monitor*, which captures its output into a log and records how it
//! ended. Around that record the library offers the verbs a docker user
//! expects: `ps`, `logs`, `exec`, `stop`, `rm`, `commit`, `images`.

use anyhow::{Context, Result};
use clap::{Args, Parser};
use minibox::cgroups::{self, Cgroup, Hierarchy};
use minibox::cli::{self, ContainerOptions, ImageArgs, ResourceOptions, RunOptions, UserOption};
use minibox::config::{self, ConfigPipe, InitConfig, CONFIG_FD};
use minibox::container::{self, ContainerState, Detached, NewContainer, Verb};
use minibox::layer::{self, Layer};
use minibox::lock::ContainerLock;
use minibox::process::{self, Exit, Spawn};
use minibox::sync::RunLink;
use minibox::{command, image, mounts, namespaces, rootfs, trace};
use std::convert::Infallible;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "07-full",
    version,
    about = "minibox stage 07: detached containers, ps, logs, exec, stop, rm, commit"
)]
enum Cli {
    /// Run COMMAND as PID 1 of new namespaces, in a cgroup of its own
    Run(Box<RunArgs>),
    #[command(flatten)]
    Container(Verb),
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
}

fn main() -> ExitCode {
    match cli::parse::<Cli>() {
        Cli::Run(args) => cli::finish_run(run(*args)),
        Cli::Init => cli::finish_init(init()),
        Cli::Container(verb) => cli::finish_run(verb.execute(&[]).map_err(Into::into)),
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

    let config_pipe = ConfigPipe::new()?;
    let mut init = Spawn::new(namespaces::CONTAINER, stdin, args.options.terminal())
        .pass_fd(config_pipe.read_end(), CONFIG_FD)
        .pass_fds(container::log_fds(log.as_ref()))
        .into_cgroup(&cgroup)
        .start()
        .context("cannot start the container")?;
    config_pipe.send(&config)?;
    cgroup.add_process(init.pid)?;
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
    run.wait_for_go("placed in its cgroup")?;
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
    rootfs::pivot_into(config.root()?)?;
    mounts::mount_proc()?;
    mounts::mount_dev()?;
    mounts::mount_sys_readonly()?;
    container::inside::prepare(&config)?;
    Ok(command::exec(&run, &config.command, &config.env)?)
}
