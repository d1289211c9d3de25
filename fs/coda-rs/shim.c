// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel's Coda file system (fs/coda) on the Rust pseudo-device: this file takes the
 * place of fs/coda/psdev.c. The file system's upcalls go to coda_psdev.ko's engine
 * through coda_psdev_upcall(), and Venus's downcalls come back through coda_rs_downcall().
 * scripts/coda-fs.sh copies the other fs/coda sources from the kernel tree and applies
 * fs-coda.patch to the places that knew psdev.c's internals.
 */
#include <linux/module.h>
#include <linux/fs.h>
#include <linux/mutex.h>
#include <linux/coda.h>
#include "coda_psdev.h"
#include "coda_linux.h"
#include "coda_int.h"
#include "coda_rs.h"

int coda_hard;
unsigned long coda_timeout = 30;
struct venus_comm coda_comms[MAX_CODADEVS];

static int coda_rs_downcall(int minor, void *msg, int len)
{
	union outputArgs *out = msg;

	/* No mount can use such a device (mount checks the index): nothing to invalidate. */
	if (minor < 0 || minor >= MAX_CODADEVS)
		return 0;
	return coda_downcall(&coda_comms[minor], out->oh.opcode, out, len);
}

/*
 * umount -f: the file system's calls waiting for Venus end with EIO, as NFS's in-flight
 * RPCs do; calls made afterwards go to Venus as usual.
 */
void coda_rs_umount_begin(struct super_block *sb)
{
	struct venus_comm *vcp = coda_vcp(sb);

	if (vcp)
		coda_psdev_abort(vcp - coda_comms);
}

static int __init init_coda_rs(void)
{
	int status, i;

	for (i = 0; i < MAX_CODADEVS; i++)
		mutex_init(&coda_comms[i].vc_mutex);
	status = coda_init_inodecache();
	if (status)
		return status;
	coda_sysctl_init();
	status = register_filesystem(&coda_fs_type);
	if (status) {
		coda_sysctl_clean();
		coda_destroy_inodecache();
		return status;
	}
	coda_psdev_set_downcall(coda_rs_downcall);
	return 0;
}

static void __exit exit_coda_rs(void)
{
	coda_psdev_set_downcall(NULL);
	unregister_filesystem(&coda_fs_type);
	coda_sysctl_clean();
	coda_destroy_inodecache();
}

module_init(init_coda_rs);
module_exit(exit_coda_rs);
MODULE_DESCRIPTION("Coda file system on the Rust pseudo-device coda_psdev");
MODULE_LICENSE("GPL");
MODULE_SOFTDEP("pre: coda_psdev");
