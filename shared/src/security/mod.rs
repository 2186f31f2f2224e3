//! Least privilege for the container's process (stage 09): what it may ask the kernel for.

pub mod seccomp;
