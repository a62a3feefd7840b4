//! The seccomp filters of jailed processes, as the bytes bubblewrap loads
//! (`--add-seccomp-fd`): an array of classic BPF instructions.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Calls refused with EPERM: memory-backed files, signals to other processes, process handles,
/// sockets, mounts and namespaces, kernel keyrings, BPF and perf, io_uring,
/// modules, and administration of the machine.
const DENIED: &[libc::c_long] = &[
    libc::SYS_kill,
    // Memory a file descriptor holds is outside RLIMIT_AS.
    libc::SYS_memfd_create,
    libc::SYS_memfd_secret,
    libc::SYS_tkill,
    libc::SYS_tgkill,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_pidfd_getfd,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_process_madvise,
    libc::SYS_kcmp,
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_personality,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_mknodat,
    libc::SYS_name_to_handle_at,
    libc::SYS_open_by_handle_at,
    libc::SYS_fanotify_init,
    libc::SYS_syslog,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_vhangup,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_mknod,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_modify_ldt,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
];

/// `clone` flags that make namespaces.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    0x80, // CLONE_NEWTIME
];

/// The bit of x32 system calls: the same calls by other numbers.
#[cfg(target_arch = "x86_64")]
const X32: &[libc::c_long] = &[0, 0x4000_0000];
#[cfg(not(target_arch = "x86_64"))]
const X32: &[libc::c_long] = &[0];

#[derive(Debug, thiserror::Error)]
#[error("building the seccomp filter: {0}")]
pub struct Error(#[from] seccompiler::BackendError);

/// The filters, each as bubblewrap reads it. The first refuses (EPERM) the
/// calls above and `clone` with namespace flags; the second answers `clone3`
/// with ENOSYS, as a kernel without it would, so that the C library falls
/// back to `clone` (whose flags the first filter can read; `clone3`'s are
/// behind a pointer). A process of another architecture is killed.
pub fn filters() -> Result<[Vec<u8>; 2], Error> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut clone3: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for bit in X32 {
        for call in DENIED {
            denied.insert(bit | call, Vec::new());
        }
        let namespaces = NAMESPACE_FLAGS
            .iter()
            .map(|&flag| {
                let op = SeccompCmpOp::MaskedEq(flag);
                let condition = SeccompCondition::new(0, SeccompCmpArgLen::Qword, op, flag)?;
                SeccompRule::new(vec![condition])
            })
            .collect::<Result<Vec<_>, _>>()?;
        denied.insert(bit | libc::SYS_clone, namespaces);
        clone3.insert(bit | libc::SYS_clone3, Vec::new());
    }
    let build = |rules, errno: i32| -> Result<Vec<u8>, Error> {
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            arch,
        )?;
        let program: BpfProgram = filter.try_into()?;
        Ok(program
            .iter()
            .flat_map(|i| {
                let mut bytes = Vec::with_capacity(8);
                bytes.extend(i.code.to_ne_bytes());
                bytes.push(i.jt);
                bytes.push(i.jf);
                bytes.extend(i.k.to_ne_bytes());
                bytes
            })
            .collect())
    };
    Ok([build(denied, libc::EPERM)?, build(clone3, libc::ENOSYS)?])
}

#[cfg(test)]
mod tests {
    #[test]
    fn filters_are_whole_instructions() {
        let [denied, clone3] = super::filters().unwrap();
        assert!(denied.len() > 8 * 60 && denied.len() % 8 == 0);
        assert!(clone3.len() >= 8 * 4 && clone3.len() % 8 == 0);
    }
}
