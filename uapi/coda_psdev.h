/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * coda-psdev: the Rust Coda pseudo-device's own user interface.
 *
 * /dev/cfsN speaks Linux's Coda protocol (<linux/coda.h>, CODA_KERNEL_VERSION 5) and adds
 * two ioctls: CODA_PSDEV_IOC_STATS and CODA_PSDEV_IOC_EXCHANGE (many replies and
 * messages in one system call).  /dev/coda_ctl, the control device, lets a process act
 * as the kernel-side caller of an upcall and receive the downcalls Venus writes.
 * Both are root only (mode 0600, CAP_SYS_ADMIN, initial user and pid namespaces).
 */
#ifndef _UAPI_LINUX_CODA_PSDEV_RS_H
#define _UAPI_LINUX_CODA_PSDEV_RS_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define CODA_PSDEV_CTL_NAME	"coda_ctl"	/* /dev/coda_ctl */
#define CODA_PSDEV_IOC_MAGIC	0xCD
/* Opcodes 0 .. CODA_PSDEV_NOPS - 1 are counted (CODA_NCALLS in <linux/coda.h>). */
#define CODA_PSDEV_NOPS		38
#define CODA_PSDEV_STATS_VERSION 2

/* Per-opcode counters. */
struct coda_psdev_opstats {
	__u64 calls;		/* upcalls queued (synchronous and asynchronous) */
	__u64 replies;		/* replies handed to their waiter */
	__u64 intr_before_read;	/* caller interrupted before Venus read the request */
	__u64 intr_after_read;	/* caller interrupted after Venus read it (CODA_SIGNAL sent) */
	__u64 signals_sent;	/* CODA_SIGNAL messages Venus read for this opcode */
	__u64 timeouts;		/* calls that ran out of time (ETIMEDOUT) */
	__u64 aborted;		/* calls ended by Venus closing the device (ENODEV) */
	__u64 bad_replies;	/* replies longer than the caller's room: caller got EIO */
	__u64 async_read;	/* asynchronous upcalls read by Venus */
	__u64 bytes_in;		/* request bytes read by Venus */
	__u64 bytes_out;	/* reply bytes written by Venus */
};

/*
 * Statistics of one /dev/cfsN, the analogue of NetBSD's CODASTATS.  The counters balance:
 * sum(calls) == sum(replies + intr_before_read + intr_after_read + timeouts + aborted +
 *               bad_replies + async_read) + outstanding
 * (an asynchronous upcall freed by a close counts as aborted).
 */
struct coda_psdev_stats {
	__u32 version;		/* CODA_PSDEV_STATS_VERSION */
	__u32 minor;		/* in for CODA_CTL_IOC_STATS: which /dev/cfsN; out: the same */
	__u64 outstanding;	/* upcalls queued or awaiting a reply now */
	__u64 peak_outstanding;
	__u64 pending;		/* queued, not yet read by Venus */
	__u64 processing;	/* read by Venus, awaiting the reply */
	__u64 mem_bytes;	/* bytes the module holds for outstanding upcalls */
	__u64 opens;		/* times Venus opened the device */
	__u64 downcalls;	/* downcalls accepted */
	__u64 downcalls_dropped; /* not queued to a listener whose queue was full */
	__u64 bad_writes;	/* writes refused (EINVAL, ESRCH, EFAULT) */
	__u64 downcall_by_op[CODA_PSDEV_NOPS];
	struct coda_psdev_opstats op[CODA_PSDEV_NOPS];
	__u64 wakes_skipped;	/* requests that woke no Venus thread: one reading through
				 * CODA_PSDEV_IOC_EXCHANGE was on its way */
	__u64 nudges;		/* of those, the ones still queued a tick later, whose
				 * caller woke a Venus thread itself */
};

/* On an open /dev/cfsN: its statistics. */
#define CODA_PSDEV_IOC_STATS	_IOR(CODA_PSDEV_IOC_MAGIC, 1, struct coda_psdev_stats)

/*
 * One message in the buffers of CODA_PSDEV_IOC_EXCHANGE: this header, len bytes of the
 * message, then padding to the next multiple of CODA_PSDEV_RECORD_ALIGN.
 */
struct coda_psdev_record {
	__u32 len;		/* bytes of the message that follow */
	__s32 result;		/* written records, out: 0, or -errno as write(2) would
				 * have failed (ESRCH: the caller is gone); read: 0 */
};

#define CODA_PSDEV_RECORD_ALIGN	8
/* The most bytes of records one exchange writes, and reads. */
#define CODA_PSDEV_EXCHANGE_MAX	(256 * 1024)

/*
 * CODA_PSDEV_IOC_EXCHANGE: Venus's replies and its next messages in one system call, as
 * binder's BINDER_WRITE_READ.  First every record from write_buf + write_consumed up to
 * write_size is written, each as one write(2) of its message would be (a reply or a
 * downcall), and its result stored in the record; a record that does not fit what is left
 * of the buffer ends the call with EINVAL.  Then messages are read into read_buf from
 * read_consumed on, each as one read(2) would return it, CODA_SIGNAL first, as many as fit:
 * if none is queued the call waits as a blocking read(2) (EAGAIN with O_NONBLOCK), and if
 * the first does not fit it fails with EMSGSIZE, the message left queued.  read_size ==
 * read_consumed skips the read half; room for less than a record header and a coda_in_hdr
 * fails with EMSGSIZE at once; one call reads at most CODA_PSDEV_EXCHANGE_MAX bytes.  Both
 * consumed counts are updated before any return, so a call ended by a signal can be made
 * again as it is: nothing is written twice and nothing read is lost.  EINVAL, before
 * anything is written, for write_size > CODA_PSDEV_EXCHANGE_MAX or a consumed count beyond
 * its size.
 */
struct coda_psdev_exchange {
	__u64 write_buf;	/* user pointer to records to write */
	__u32 write_size;
	__u32 write_consumed;	/* in and out */
	__u64 read_buf;		/* user pointer to room for records read */
	__u32 read_size;
	__u32 read_consumed;	/* in and out */
};

#define CODA_PSDEV_IOC_EXCHANGE	_IOWR(CODA_PSDEV_IOC_MAGIC, 2, struct coda_psdev_exchange)

/* Flags of struct coda_ctl_call. */
#define CODA_CTL_ASYNC		0x1	/* no reply wanted: returns once queued */

/*
 * An upcall made through /dev/coda_ctl, as a file-system caller would make it.  The
 * message starts with struct coda_in_hdr; its unique is assigned by the driver (and
 * returned), every other byte is passed to Venus as given.  The call blocks until Venus
 * replies and fails with errno as a file-system caller would: ENODEV (no Venus, or Venus
 * closed the device), EINTR (signal; never restarted), ETIMEDOUT, EIO (Venus's reply did
 * not fit out_cap), EINVAL (bad minor, flags or sizes), EFAULT.
 */
struct coda_ctl_call {
	__u32 minor;		/* which /dev/cfsN */
	__u32 flags;		/* CODA_CTL_* */
	__u64 in;		/* user pointer to the message */
	__u32 in_len;		/* sizeof(struct coda_in_hdr) .. VC_MAXMSGSIZE */
	__u32 out_cap;		/* room for the reply: sizeof(struct coda_out_hdr) ..
				 * VC_MAXMSGSIZE; ignored for CODA_CTL_ASYNC */
	__u64 out;		/* user pointer to out_cap bytes for the reply */
	__u32 out_len;		/* out: length of the reply Venus wrote */
	__u32 unique;		/* out: the unique the upcall carried */
};

#define CODA_CTL_IOC_CALL	_IOWR(CODA_PSDEV_IOC_MAGIC, 0x10, struct coda_ctl_call)
/* Statistics of /dev/cfs<minor>, without opening it. */
#define CODA_CTL_IOC_STATS	_IOWR(CODA_PSDEV_IOC_MAGIC, 0x11, struct coda_psdev_stats)

/*
 * read() on /dev/coda_ctl returns one downcall per call: this header, then len bytes of
 * the message Venus wrote (starting with struct coda_out_hdr).  Every open file of the
 * control device receives every downcall written after it was opened, up to
 * CODA_CTL_DOWNCALL_QUEUE queued per file (more are dropped and counted).  A buffer too
 * small for the next record fails with EMSGSIZE and the record stays queued; with
 * O_NONBLOCK an empty queue fails with EAGAIN; poll reports EPOLLIN while one is queued.
 */
struct coda_ctl_downcall {
	__u32 minor;		/* the /dev/cfsN it was written to */
	__u32 len;		/* bytes that follow */
};

#define CODA_CTL_DOWNCALL_QUEUE	4096

#endif /* _UAPI_LINUX_CODA_PSDEV_RS_H */
