/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * coda-psdev: the Rust Coda pseudo-device's own user interface.
 *
 * /dev/cfsN speaks Linux's Coda protocol (<linux/coda.h>, CODA_KERNEL_VERSION 5) and adds
 * one ioctl, CODA_PSDEV_IOC_STATS.  /dev/coda_ctl, the control device, lets a process act
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
#define CODA_PSDEV_STATS_VERSION 1

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
};

/* On an open /dev/cfsN: its statistics. */
#define CODA_PSDEV_IOC_STATS	_IOR(CODA_PSDEV_IOC_MAGIC, 1, struct coda_psdev_stats)

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
