//! # Stage 06 — a writable layer over a read-only image, and volumes
//!
//! Stage 05 plus one idea: the container no longer writes into its root
//! filesystem. The root is an *image* (the busybox rootfs, or a tarball
//! imported with `image import`), shared read-only by every container, and
//! each container gets an overlayfs on top: reads fall through to the image,
//! writes land in the container's own `upper` directory, and deleting the
//! layer afterwards leaves the image untouched. Data meant to outlive the
//! container goes into a volume: `-v HOST:CONTAINER[:ro]` bind-mounts a host
//! directory into the new root before `pivot_root`.

use anyhow::{Context, Result};
use clap::{Args, Parser};
use minibox::cgroups::{self, Cgroup, Hierarchy};
use minibox::cli::{self, ImageArgs, ResourceOptions, RunOptions};
use minibox::config::{self, ConfigPipe, InitConfig, CONFIG_FD};
use minibox::image::{self, ImageCommand};
use minibox::layer::{self, Layer};
use minibox::lock::ContainerLock;
use minibox::process::{self, Exit, Spawn};
use minibox::sync::RunLink;
use minibox::{command, id, mounts, namespaces, rootfs, trace};
use std::convert::Infallible;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "06-volumes",
    version,
    about = "minibox stage 06: overlayfs layers over images, and volumes"
)]
enum Cli {
    /// Run COMMAND as PID 1 of new namespaces, in a cgroup of its own
    Run(Box<RunArgs>),
    /// Images: import, load and save (OCI layouts), list, tag, inspect, remove
    #[command(subcommand)]
    Image(ImageCommand),
    /// Remove cgroups, layers and imports left behind by runs that were killed
    Cleanup {
        #[arg(long, value_name = "PATH", default_value = cgroups::DEFAULT_PARENT, value_parser = cgroups::parse_parent, env = "MINIBOX_CGROUP_PARENT")]
        cgroup_parent: String,
    },
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
}

fn main() -> ExitCode {
    match cli::parse::<Cli>() {
        Cli::Run(args) => cli::finish_run(run(*args)),
        Cli::Init => cli::finish_init(init()),
        Cli::Image(command) => cli::finish_run(image_command(command)),
        Cli::Cleanup { cgroup_parent } => cli::finish_run(cleanup(&cgroup_parent)),
    }
}

/// The parent, on the host: start init in new namespaces, wait for it.
fn run(args: RunArgs) -> Result<Exit> {
    trace::start(args.options.trace);
    process::catch_signals();
    let limits = args.resources.limits()?;
    let id = id::generate()?;
    let hostname = args.options.hostname_or(&id)?;
    let stdin = args.options.stdin()?;
    let (image, argv) = args.image.image_and_command()?;
    args.image.prepare_volumes()?;
    let mut config = InitConfig::new(args.options.trace, hostname, argv);
    config.env = image::environment(
        command::container_env(&config.hostname, args.options.terminal()),
        &image,
    );

    // Whatever on the host carries this id is ours while we hold its lock.
    let _lock = ContainerLock::acquire(&id)?;

    // The cgroup exists, limits and all, before init exists.
    let hierarchy = Hierarchy::detect()?;
    cgroups::remove_stale(&hierarchy, &args.resources.cgroup_parent)?;
    layer::remove_stale(|_| false);
    let mut cgroup = Cgroup::create(hierarchy, &args.resources.cgroup_parent, &id, &limits)?;
    let mut layer = Layer::create(&id, &image)?;
    config.root = Some(layer.paths().merged);
    config.layer = Some(layer.paths());
    config.volumes = args.image.volumes.clone();

    let config_pipe = ConfigPipe::new()?;
    let mut init = Spawn::new(namespaces::CONTAINER, stdin, args.options.terminal())
        .pass_fd(config_pipe.read_end(), CONFIG_FD)
        .into_cgroup(&cgroup)
        .start()
        .context("cannot start the container")?;
    config_pipe.send(&config)?;
    cgroup.add_process(init.pid)?;
    init.release()?;

    init.wait_for_exec()?;
    let exit = init.wait()?;
    let oom_kills = cgroup.oom_kills();
    cgroup.remove()?;
    layer.remove()?;
    trace::flush();
    match args.resources.oom_error(oom_kills) {
        Some(oom) => Err(oom.into()),
        None => Ok(exit),
    }
}

fn image_command(command: ImageCommand) -> Result<Exit> {
    image::run_command(command, |_| None)?;
    Ok(Exit::Code(0))
}

/// Remove what runs killed with SIGKILL left behind.
fn cleanup(cgroup_parent: &str) -> Result<Exit> {
    let removed = cgroups::cleanup(&Hierarchy::detect()?, cgroup_parent)?;
    let layers = layer::remove_stale(|_| false);
    let imports = image::remove_stale_imports();
    ContainerLock::remove_free_locks();
    println!("removed {removed} stale cgroup(s) under {cgroup_parent}, {layers} layer(s), {imports} unfinished import(s)");
    Ok(Exit::Code(0))
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
    Ok(command::exec(&run, &config.command, &config.env)?)
}
