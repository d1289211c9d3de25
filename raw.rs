// SPDX-License-Identifier: GPL-2.0

//! The raw glue: every `unsafe` of the driver lives here.
//!
//! `kernel::miscdevice::MiscDevice` has no `poll`, and Venus needs it, so (as Rust binder
//! does) this module builds its own `file_operations` for a misc device and hands the rest
//! of the driver safe calls: [`FileOps`] for the device files, [`SignalBlock`] for the
//! non-interruptible upcalls, and the credential checks of `open`.

use core::ffi::c_int;
use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::offset_of;
use core::pin::Pin;
use core::ptr::NonNull;

use kernel::bindings;
use kernel::error::to_result;
use kernel::fs::File;
use kernel::fs::LocalFile;
use kernel::prelude::*;
use kernel::seq_file::SeqFile;
use kernel::str::CString;
use kernel::sync::aref::ARef;
use kernel::sync::poll::PollTable;
use kernel::types::ForeignOwnable;
use kernel::types::Opaque;
use kernel::uaccess::UserPtr;
use kernel::uaccess::UserSlice;
use kernel::uaccess::UserSliceReader;
use kernel::uaccess::UserSliceWriter;

use crate::bridge;
use crate::bridge::DowncallFn;
use crate::coda_msg;

/// EPOLLIN | EPOLLRDNORM: a message can be read.
pub(crate) const POLL_READABLE: u32 = bindings::POLLIN | bindings::POLLRDNORM;
/// EPOLLOUT | EPOLLWRNORM: a reply or downcall can be written (always).
pub(crate) const POLL_WRITABLE: u32 = bindings::POLLOUT | bindings::POLLWRNORM;

/// The operations of one kind of device file. Each open file owns a `Self::Ptr`.
pub(crate) trait FileOps: Sized + 'static {
    /// What every file of one registration shares (the device it belongs to).
    type Ctx: Send + Sync;
    /// The private data of an open file.
    type Ptr: ForeignOwnable + Send + Sync;

    /// Opens a file of the device whose context is `ctx`.
    fn open(ctx: &Self::Ctx, file: &File) -> Result<Self::Ptr>;
    /// The last reference to the file is gone.
    fn release(this: Self::Ptr);
    /// `read(2)`: `out` is the caller's buffer.
    fn read(
        this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        file: &File,
        out: UserSliceWriter,
    ) -> Result<usize>;
    /// `write(2)`: `data` is the caller's buffer.
    fn write(
        this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        file: &File,
        data: UserSliceReader,
    ) -> Result<usize>;
    /// `ioctl(2)`.
    fn ioctl(
        this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        file: &File,
        cmd: u32,
        arg: UserPtr,
    ) -> Result<isize>;
    /// `poll(2)`/`epoll`: registers on the wait queues, returns the ready mask.
    fn poll(
        this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        file: &File,
        table: PollTable<'_>,
    ) -> u32;
    /// `/proc/<pid>/fdinfo/<fd>`.
    fn show_fdinfo(this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>, m: &SeqFile);
}

/// A registered misc device whose files are served by `T`.
///
/// # Invariants
///
/// `misc` is registered with `misc_register()` for as long as this value lives, and its
/// `fops` are `Vtable::<T>::FOPS`; `misc` is the first field, so a pointer to it is a
/// pointer to the whole registration.
#[repr(C)]
#[pin_data(PinnedDrop)]
pub(crate) struct MiscReg<T: FileOps> {
    #[pin]
    misc: Opaque<bindings::miscdevice>,
    /// The device's name; `misc.name` points into its heap buffer.
    name: CString,
    ctx: T::Ctx,
}

// SAFETY: `misc_deregister` may run on any thread; `ctx` is `Send`.
unsafe impl<T: FileOps> Send for MiscReg<T> {}
// SAFETY: the registration is only read after `misc_register`; `ctx` is `Sync`.
unsafe impl<T: FileOps> Sync for MiscReg<T> {}

impl<T: FileOps> MiscReg<T> {
    /// Registers `/dev/<name>` (mode 0600) with `ctx` shared by its files.
    pub(crate) fn register(name: CString, ctx: T::Ctx) -> impl PinInit<Self, Error> {
        let name_ptr = name.as_char_ptr();
        try_pin_init!(Self {
            name,
            ctx,
            misc <- Opaque::try_ffi_init(move |slot: *mut bindings::miscdevice| {
                let mut misc: bindings::miscdevice = pin_init::zeroed();
                misc.minor = bindings::MISC_DYNAMIC_MINOR as i32;
                misc.name = name_ptr;
                misc.fops = &Vtable::<T>::FOPS;
                misc.mode = 0o600;
                // `name` and `ctx` are initialised first (field order above): the name
                // outlives the registration, and an `open` racing with it finds the context.
                // SAFETY: the initialiser may write `slot`, pinned until `drop` deregisters it.
                unsafe { slot.write(misc) };
                // SAFETY: `slot` holds a valid `miscdevice`.
                to_result(unsafe { bindings::misc_register(slot) })
            }),
        })
    }
}

impl<T: FileOps> MiscReg<T> {
    /// The misc minor the device got.
    pub(crate) fn minor(&self) -> u32 {
        // SAFETY: `misc` is registered (invariant); `minor` was set by `misc_register` and
        // is not changed while registered.
        unsafe { (*self.misc.get()).minor as u32 }
    }
}

#[pinned_drop]
impl<T: FileOps> PinnedDrop for MiscReg<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered by the type invariant. No file can be open: each holds a
        // reference on the module (`fops.owner`), and the module is being unloaded.
        unsafe { bindings::misc_deregister(self.misc.get()) };
    }
}

struct Vtable<T: FileOps>(PhantomData<T>);

impl<T: FileOps> Vtable<T> {
    const FOPS: bindings::file_operations = bindings::file_operations {
        owner: kernel::module::this_module::<crate::CodaPsdevModule>().as_ptr(),
        open: Some(Self::open),
        release: Some(Self::release),
        read: Some(Self::read),
        write: Some(Self::write),
        poll: Some(Self::poll),
        unlocked_ioctl: Some(Self::ioctl),
        compat_ioctl: Some(Self::ioctl),
        show_fdinfo: Some(Self::show_fdinfo),
        llseek: Some(bindings::noop_llseek),
        // SAFETY: all-zero is a valid `file_operations` (every other entry absent).
        ..unsafe { core::mem::zeroed() }
    };

    /// # Safety
    ///
    /// Called by the VFS for a file of a `MiscReg<T>` being opened.
    unsafe extern "C" fn open(inode: *mut bindings::inode, raw: *mut bindings::file) -> i32 {
        // SAFETY: both are valid for a file being opened.
        let ret = unsafe { bindings::nonseekable_open(inode, raw) };
        if ret != 0 {
            return ret;
        }
        // SAFETY: `misc_open()` set the private data to our `miscdevice`, which is the first
        // field of a live `MiscReg<T>` (invariant) that cannot go away during `open`.
        let reg = unsafe {
            &*(*raw)
                .private_data
                .cast::<u8>()
                .sub(offset_of!(MiscReg<T>, misc))
                .cast::<MiscReg<T>>()
        };
        // SAFETY: the file is valid for the duration of `open` and has no fdget_pos region.
        let file = unsafe { File::from_raw_file(raw) };
        match T::open(&reg.ctx, file) {
            Ok(ptr) => {
                // SAFETY: `open` may set the private data; from here on every entry point
                // reads it back as `T::Ptr`.
                unsafe { (*raw).private_data = ptr.into_foreign().cast() };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFS once for a file opened by [`Self::open`].
    unsafe extern "C" fn release(_inode: *mut bindings::inode, raw: *mut bindings::file) -> i32 {
        // SAFETY: `open` stored a `T::Ptr`; release takes it back exactly once.
        let ptr = unsafe { T::Ptr::from_foreign((*raw).private_data.cast()) };
        T::release(ptr);
        0
    }

    /// # Safety
    ///
    /// `raw` is a file opened by [`Self::open`]; the VFS keeps it alive during the call.
    unsafe fn parts<'a>(
        raw: *mut bindings::file,
    ) -> (<T::Ptr as ForeignOwnable>::Borrowed<'a>, &'a File) {
        // SAFETY: the private data is the `T::Ptr` stored by `open`, not yet released.
        let this = unsafe { T::Ptr::borrow((*raw).private_data.cast()) };
        // SAFETY: the file is valid for the call and has no fdget_pos region of ours.
        let file = unsafe { File::from_raw_file(raw) };
        (this, file)
    }

    /// # Safety
    ///
    /// Called by the VFS for a file opened by [`Self::open`].
    unsafe extern "C" fn read(
        raw: *mut bindings::file,
        buf: *mut kernel::ffi::c_char,
        len: usize,
        _pos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: forwarded from the VFS.
        let (this, file) = unsafe { Self::parts(raw) };
        let out = UserSlice::new(UserPtr::from_ptr(buf.cast()), len).writer();
        match T::read(this, file, out) {
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS for a file opened by [`Self::open`].
    unsafe extern "C" fn write(
        raw: *mut bindings::file,
        buf: *const kernel::ffi::c_char,
        len: usize,
        _pos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: forwarded from the VFS.
        let (this, file) = unsafe { Self::parts(raw) };
        let data = UserSlice::new(UserPtr::from_ptr(buf as *mut _), len).reader();
        match T::write(this, file, data) {
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS for a file opened by [`Self::open`].
    unsafe extern "C" fn ioctl(raw: *mut bindings::file, cmd: u32, arg: usize) -> isize {
        // SAFETY: forwarded from the VFS.
        let (this, file) = unsafe { Self::parts(raw) };
        match T::ioctl(this, file, cmd, UserPtr::from_addr(arg)) {
            Ok(n) => n,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS for a file opened by [`Self::open`], with a valid poll table or
    /// NULL.
    unsafe extern "C" fn poll(
        raw: *mut bindings::file,
        table: *mut bindings::poll_table_struct,
    ) -> bindings::__poll_t {
        // SAFETY: forwarded from the VFS.
        let (this, file) = unsafe { Self::parts(raw) };
        // SAFETY: the table is valid (or NULL) for the duration of the call.
        let table = unsafe { PollTable::from_raw(table) };
        T::poll(this, file, table)
    }

    /// # Safety
    ///
    /// Called by procfs for a file opened by [`Self::open`], with a valid `seq_file`.
    unsafe extern "C" fn show_fdinfo(m: *mut bindings::seq_file, raw: *mut bindings::file) {
        // SAFETY: forwarded from procfs.
        let (this, _file) = unsafe { Self::parts(raw) };
        // SAFETY: `m` is valid and exclusively ours for the call.
        let m = unsafe { SeqFile::from_raw(m) };
        T::show_fdinfo(this, m);
    }
}

/// Whether the current task may be Venus or a caller: root (CAP_SYS_ADMIN) in the initial
/// user and pid namespaces, as Linux's `coda_psdev_open` requires (a container's root must
/// not serve or fake upcalls for the host).
pub(crate) fn current_may_open() -> bool {
    // SAFETY: `capable` only reads the current task's credentials.
    let admin = unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) };
    // SAFETY: `current_user_ns` reads the current credentials, alive during the call.
    let user_ns = unsafe { bindings::current_user_ns() };
    // SAFETY: the current task is alive; only the returned pointer is compared.
    let pid_ns = unsafe { bindings::task_active_pid_ns(bindings::get_current()) };
    admin
        && core::ptr::eq(user_ns, core::ptr::addr_of!(bindings::init_user_ns))
        && core::ptr::eq(pid_ns, core::ptr::addr_of!(bindings::init_pid_ns))
}

/// While alive, signals of the current task are blocked, so that an interruptible sleep
/// ends only on the ones left through. Unlike sigprocmask(2), the kernel's `sigprocmask()`
/// blocks SIGSTOP too: a process stopped during a call stops when the call ends, rather
/// than failing the call with EINTR as Linux's coda does (which lets SIGSTOP through).
pub(crate) struct SignalBlock {
    old: bindings::sigset_t,
    _not_send: PhantomData<*mut ()>,
}

impl SignalBlock {
    /// Every signal but SIGKILL: for the calls Venus must see (CODA_CLOSE, ...) and `hard`.
    pub(crate) fn new() -> Self {
        Self::all_but(1 << (bindings::SIGKILL - 1))
    }

    /// Every signal but SIGKILL and SIGINT, as Linux's `coda_block_signals` for the Coda
    /// file system's calls: Ctrl-C ends them, a shell's SIGCHLD does not fail an open.
    pub(crate) fn all_but_sigint() -> Self {
        Self::all_but((1 << (bindings::SIGKILL - 1)) | (1 << (bindings::SIGINT - 1)))
    }

    /// The stop signals alone (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU): for the file system's
    /// calls once every other signal may end them. Ctrl-Z never fails a call; the process
    /// stops when it returns.
    pub(crate) fn stops() -> Self {
        let bit = |s: u32| -> kernel::ffi::c_ulong { 1 << (s - 1) };
        let stops = bit(bindings::SIGSTOP)
            | bit(bindings::SIGTSTP)
            | bit(bindings::SIGTTIN)
            | bit(bindings::SIGTTOU);
        Self::all_but(!stops)
    }

    fn all_but(through: kernel::ffi::c_ulong) -> Self {
        let mut set = bindings::sigset_t { sig: [!through] };
        let mut old = bindings::sigset_t { sig: [0] };
        // SAFETY: both sets are valid; `sigprocmask` only changes the current task's mask
        // (adding to it: what the task blocked stays blocked) and recalculates its pending
        // state. SIG_BLOCK cannot fail.
        unsafe { bindings::sigprocmask(bindings::SIG_BLOCK as i32, &mut set, &mut old) };
        Self {
            old,
            _not_send: PhantomData,
        }
    }
}

impl Drop for SignalBlock {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new` on the same task (`!Send`); a signal
        // that arrived meanwhile becomes pending again and is delivered on return to
        // userspace.
        unsafe {
            bindings::sigprocmask(
                bindings::SIG_SETMASK as i32,
                &mut self.old,
                core::ptr::null_mut(),
            )
        };
    }
}

/// A reference to the container file Venus named in a CODA_OPEN_BY_FD reply, on its way to
/// the file system. Dropping it puts the file.
pub(crate) struct FileHandle(NonNull<LocalFile>);

impl FileHandle {
    /// The reply reached its caller, which now owns the reference.
    pub(crate) fn hand_over(self) {
        core::mem::forget(self);
    }
}

impl Drop for FileHandle {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `ARef::into_raw` in `attach_file_handle` and its
        // reference was not handed over.
        drop(unsafe { ARef::from_raw(self.0) });
    }
}

/// Turns the descriptor of a successful CODA_OPEN_BY_FD reply into a `struct file *` in
/// Venus's context, as Linux's `coda_psdev_write` does, and appends it where the kernel's
/// `struct coda_open_by_fd_out` has it (`fh`, after `fd`).
// Never inlined: the fault-injection test finds it by name (tests/coda-fs-faults.sh).
#[inline(never)]
pub(crate) fn attach_file_handle(reply: &mut KVec<u8>, cap: usize) -> Result<Option<FileHandle>> {
    const FD_END: usize = coda_msg::OUT_HDR_SIZE + 4;
    const FH_END: usize = FD_END + core::mem::size_of::<usize>();
    if reply.len() < FD_END || cap < FH_END {
        return Err(EINVAL);
    }
    let result = i32::from_ne_bytes([reply[8], reply[9], reply[10], reply[11]]);
    if result != 0 {
        return Ok(None);
    }
    let fd = u32::from_ne_bytes([reply[12], reply[13], reply[14], reply[15]]);
    reply.truncate(FD_END);
    let Ok(file) = LocalFile::fget(fd) else {
        // Linux stores -EBADF, which its caller negates into a positive error; Venus's
        // errors are positive, so this one is too.
        reply[8..12].copy_from_slice(&(EBADF.to_errno().unsigned_abs() as i32).to_ne_bytes());
        return Ok(None);
    };
    // Owned by the handle before anything can fail, so that a failed allocation puts the
    // file (the container's reference would otherwise be held for ever).
    let handle = FileHandle(ARef::into_raw(file));
    reply.extend_from_slice(&(handle.0.as_ptr() as usize).to_ne_bytes(), GFP_KERNEL)?;
    Ok(Some(handle))
}

/// Calls the file system's downcall handler; returns its result (0 or a negative errno).
pub(crate) fn call_downcall(handler: DowncallFn, minor: u32, msg: &mut [u8]) -> c_int {
    // SAFETY: the handler was registered by the file system module, which cannot unload
    // while the bridge lock (held by our caller) is held; `msg` is a valid downcall of
    // `msg.len()` bytes, validated to its exact size.
    unsafe { handler(minor as i32, msg.as_mut_ptr(), msg.len() as i32) }
}

/// Makes an upcall for the kernel's Coda file system: `buf` holds `in_size` bytes of
/// request and has room for `*out_size` bytes of reply, whose length is stored back.
/// `flags` (`coda_rs.h`): `CODA_PSDEV_ASYNC` queues the upcall and awaits no reply
/// (`out_size` is then ignored and may be NULL); `CODA_PSDEV_NOINTR` lets only SIGKILL end
/// the wait. `timeout` is the file system's `/proc/sys/coda/timeout`: after that many
/// seconds an interruptible call lets every signal end it (it never fails by itself).
/// Returns 0 or a negative errno.
///
/// # Safety
///
/// `buf` is valid for reads and writes of `max(in_size, *out_size)` bytes (`in_size`
/// with `CODA_PSDEV_ASYNC`) and, without that flag, `out_size` is valid for a read and a
/// write, for the whole call.
#[no_mangle]
pub(crate) unsafe extern "C" fn coda_psdev_upcall(
    index: c_int,
    buf: *mut c_void,
    in_size: c_int,
    out_size: *mut c_int,
    flags: u32,
    timeout: u32,
) -> c_int {
    if flags & !(bridge::UPCALL_ASYNC | bridge::UPCALL_NOINTR) != 0 || buf.is_null() {
        return EINVAL.to_errno();
    }
    let out = if flags & bridge::UPCALL_ASYNC != 0 {
        None
    } else if out_size.is_null() {
        return EINVAL.to_errno();
    } else {
        // SAFETY: the caller passes a valid `out_size` for a synchronous upcall.
        Some(unsafe { *out_size })
    };
    let Ok(in_len) = usize::try_from(in_size) else {
        return EINVAL.to_errno();
    };
    let Ok(out_len) = usize::try_from(out.unwrap_or(0)) else {
        return EINVAL.to_errno();
    };
    // SAFETY: the caller passes a buffer of at least this many bytes, ours for the call.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), in_len.max(out_len)) };
    if out.is_none() {
        return match bridge::upcall_async(index, &buf[..in_len]) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        };
    }
    match bridge::upcall(
        index,
        &mut buf[..],
        in_len,
        flags & bridge::UPCALL_NOINTR != 0,
        timeout,
    ) {
        Ok(n) => {
            // SAFETY: as above.
            unsafe { *out_size = n as c_int };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// The index of the `/dev/cfsN` whose device number is `rdev`, or -1.
#[no_mangle]
pub(crate) extern "C" fn coda_psdev_index(rdev: u32) -> c_int {
    if rdev >> 20 != bindings::MISC_MAJOR {
        return -1;
    }
    bridge::index_of_minor(rdev & 0xfffff).map_or(-1, |i| i as c_int)
}

/// Whether Venus has `/dev/cfs<index>` open.
#[no_mangle]
pub(crate) extern "C" fn coda_psdev_venus_present(index: c_int) -> bool {
    bridge::venus_present(index)
}

/// A forced unmount of the file system on `/dev/cfs<index>`: its calls in flight end with
/// EIO.
#[no_mangle]
pub(crate) extern "C" fn coda_psdev_abort(index: c_int) {
    bridge::abort(index);
}

/// Registers (or with NULL removes) the file system's downcall handler.
#[no_mangle]
pub(crate) extern "C" fn coda_psdev_set_downcall(handler: Option<DowncallFn>) {
    bridge::set_downcall(handler);
}

// EXPORT_SYMBOL_GPL for the five entry points above, as `include/linux/export.h` emits
// it: modpost turns the `.export_symbol` entries into the module's symbol table.
core::arch::global_asm!(
    ".section \".export_symbol\",\"a\"",
    "__export_symbol_coda_psdev_upcall:",
    ".asciz \"GPL\"",
    ".ascii \"\\0\"",
    ".balign 8",
    ".quad coda_psdev_upcall",
    "__export_symbol_coda_psdev_index:",
    ".asciz \"GPL\"",
    ".ascii \"\\0\"",
    ".balign 8",
    ".quad coda_psdev_index",
    "__export_symbol_coda_psdev_venus_present:",
    ".asciz \"GPL\"",
    ".ascii \"\\0\"",
    ".balign 8",
    ".quad coda_psdev_venus_present",
    "__export_symbol_coda_psdev_abort:",
    ".asciz \"GPL\"",
    ".ascii \"\\0\"",
    ".balign 8",
    ".quad coda_psdev_abort",
    "__export_symbol_coda_psdev_set_downcall:",
    ".asciz \"GPL\"",
    ".ascii \"\\0\"",
    ".balign 8",
    ".quad coda_psdev_set_downcall",
    ".previous",
);
