/* SPDX-License-Identifier: GPL-2.0 */
/* The entry points coda_psdev.ko (Rust) exports to the Coda file system. */
#ifndef _CODA_RS_H
#define _CODA_RS_H

/* coda_psdev_upcall() flags */
#define CODA_PSDEV_ASYNC	1	/* queue it, await no reply */
#define CODA_PSDEV_NOINTR	2	/* only SIGKILL ends the wait; no timeout */

/*
 * timeout: seconds after which an interruptible call lets every signal end it (Linux's
 * coda_timeout); no call ever fails by itself.
 */
int coda_psdev_upcall(int index, void *buf, int in_size, int *out_size, unsigned int flags,
		      unsigned int timeout);
int coda_psdev_index(dev_t rdev);
bool coda_psdev_venus_present(int index);
void coda_psdev_abort(int index);
void coda_psdev_set_downcall(int (*handler)(int minor, void *msg, int len));

void coda_rs_umount_begin(struct super_block *sb);

#endif
