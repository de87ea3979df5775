//! Dispatch: the edge where a decision becomes a process. `ansible` builds
//! the argument vector, the extra-vars file and the run log and starts
//! `ansible-playbook`; `slots` bounds how many run at once.

pub(crate) mod ansible;
pub(crate) mod slots;
