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
use minibox::cli::{self, ResourceOptions, RunOptions};
use minibox::command::{self, CommandPipe, COMMAND_FD};
use minibox::image::{self, ImageCommand};
use minibox::layer::{self, Layer};
use minibox::lifecycle;
use minibox::mounts;
use minibox::namespaces::{self, Exit, InitSpec};
use minibox::paths::ContainerLock;
use minibox::rootfs;
use minibox::sync::RunLink;
use minibox::trace;
use minibox::volumes::{self, Volume};
use minibox::Error;
use nix::sched::CloneFlags;
use std::convert::Infallible;
use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::process::ExitCode;

/// The namespaces init is born in (the user namespace comes much later).
const NAMESPACES: CloneFlags = CloneFlags::CLONE_NEWUTS
    .union(CloneFlags::CLONE_NEWPID)
    .union(CloneFlags::CLONE_NEWNS)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWNET);

#[derive(Parser)]
#[command(
    name = "06-volumes",
    version,
    about = "minibox stage 06: overlayfs layers over images, and volumes"
)]
enum Cli {
    /// Run COMMAND as PID 1 of new namespaces, in a cgroup of its own
    Run(RunArgs),
    /// Import, list and remove images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Remove cgroups and layers left behind by runs that were killed
    Cleanup {
        #[arg(long, value_name = "PATH", default_value = cgroups::DEFAULT_PARENT, value_parser = cgroups::parse_parent, env = "MINIBOX_CGROUP_PARENT")]
        cgroup_parent: String,
    },
    /// The container's first process (started by `run`, not by hand)
    #[command(hide = true)]
    Init(InitArgs),
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    options: RunOptions,
    #[command(flatten)]
    resources: ResourceOptions,
    /// Use this directory as the image instead of IMAGE (all arguments are then the command)
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Bind-mount a host directory: HOST:CONTAINER[:ro] (repeatable)
    #[arg(short, long = "volume", value_name = "HOST:CONTAINER[:ro]", value_parser = volumes::parse)]
    volumes: Vec<Volume>,
    /// The image, then the command to run in it [default command: sh]
    #[arg(
        trailing_var_arg = true,
        required_unless_present = "rootfs",
        value_name = "IMAGE [COMMAND [ARGS...]]"
    )]
    args: Vec<OsString>,
}

impl RunArgs {
    /// docker's `IMAGE [COMMAND]`, or with `--rootfs` just `[COMMAND]`.
    fn image_and_command(&self) -> Result<(PathBuf, Vec<OsString>)> {
        let (lower, command) = match &self.rootfs {
            Some(dir) => (rootfs::resolve(Some(dir))?, self.args.clone()),
            None => {
                let Some((name, command)) = self.args.split_first() else {
                    return Err(Error::Usage("an IMAGE is needed (or --rootfs DIR)".into()).into());
                };
                (image::resolve(&name.to_string_lossy())?, command.to_vec())
            }
        };
        let command = if command.is_empty() {
            vec!["sh".into()]
        } else {
            command
        };
        Ok((lower, command))
    }
}

#[derive(Args)]
struct InitArgs {
    #[arg(long)]
    sync_fd: RawFd,
    #[arg(long)]
    hostname: String,
    #[arg(long)]
    image: PathBuf,
    #[arg(long)]
    layer: PathBuf,
    #[arg(long = "volume", value_parser = volumes::parse)]
    volumes: Vec<Volume>,
}

fn main() -> ExitCode {
    match cli::parse::<Cli>() {
        Cli::Run(args) => cli::finish_run(run(args)),
        Cli::Init(args) => cli::finish_init(init(args)),
        Cli::Image(command) => cli::finish_run(image_command(command)),
        Cli::Cleanup { cgroup_parent } => cli::finish_run(cleanup(&cgroup_parent)),
    }
}

/// The parent, on the host: start init in new namespaces, wait for it.
fn run(args: RunArgs) -> Result<Exit> {
    trace::start(args.options.trace);
    let limits = args.resources.limits()?;
    let id = namespaces::generate_id()?;
    let hostname = args.options.hostname_or(&id)?;
    let stdin = args.options.stdin()?;
    let (image, command) = args.image_and_command()?;
    for volume in &args.volumes {
        volume.prepare_host()?;
    }

    // The cgroup exists, limits and all, before init exists.
    let hierarchy = Hierarchy::detect()?;
    let _lock = ContainerLock::acquire(&id)?;
    cgroups::remove_stale(&hierarchy, &args.resources.cgroup_parent)?;
    layer::remove_stale();
    let mut cgroup = Cgroup::create(hierarchy, &args.resources.cgroup_parent, &id, &limits)?;
    let mut layer = Layer::create(&id, &image)?;

    let command_pipe = CommandPipe::new()?;
    let mut init = namespaces::spawn_init(InitSpec {
        namespaces: NAMESPACES,
        args: init_args(&hostname, &layer, &args.volumes),
        pass_fds: vec![(command_pipe.read_end(), COMMAND_FD)],
        stdin,
        terminal: args.options.tty,
    })
    .context("cannot start the container")?;
    command_pipe.send(&command)?;
    cgroup.add_process(init.pid)?;
    init.release()?;

    init.wait_for_exec()?;
    let exit = init.wait()?;
    let oom_kills = cgroup.oom_kills();
    cgroup.remove()?;
    layer.remove()?;
    trace::flush();
    if oom_kills > 0 {
        let limit = limits.memory.map_or("none".into(), cgroups::human_bytes);
        return Err(Error::OutOfMemory {
            limit,
            kills: oom_kills,
        }
        .into());
    }
    Ok(exit)
}

/// init's arguments: where its image, layer and volumes are.
fn init_args(hostname: &str, layer: &Layer, volumes: &[Volume]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--hostname".into(),
        hostname.into(),
        "--image".into(),
        layer.lower.clone().into(),
        "--layer".into(),
        layer.dir.clone().into(),
    ];
    for volume in volumes {
        args.extend(["--volume".into(), volume.to_string().into()]);
    }
    args
}

fn image_command(command: ImageCommand) -> Result<Exit> {
    image::run_command(command)?;
    Ok(Exit::Code(0))
}

/// Remove what runs killed with SIGKILL left behind.
fn cleanup(cgroup_parent: &str) -> Result<Exit> {
    let (cgroups, layers) = lifecycle::remove_leftovers(cgroup_parent)?;
    println!("removed {cgroups} stale cgroup(s) under {cgroup_parent} and {layers} layer(s)");
    Ok(Exit::Code(0))
}

/// The child, PID 1 of its namespaces: set up, then become the command.
fn init(args: InitArgs) -> Result<Infallible> {
    let run = RunLink::connect(args.sync_fd)?;
    run.wait_for_go("placed in its cgroup")?;
    let command = command::receive(COMMAND_FD)?;
    namespaces::set_hostname(&args.hostname)?;
    mounts::make_mount_tree_private()?;
    let layer = Layer::open(&args.layer, &args.image);
    layer.mount()?;
    for volume in &args.volumes {
        volume.mount(&layer.merged())?;
    }
    rootfs::pivot_into(&layer.merged())?;
    mounts::mount_proc()?;
    mounts::mount_dev()?;
    mounts::mount_sys_readonly()?;
    let env = command::container_env(&args.hostname);
    Ok(command::exec(&run, &command, &env)?)
}
