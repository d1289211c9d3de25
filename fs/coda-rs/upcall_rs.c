// SPDX-License-Identifier: GPL-2.0
/*
 * coda_upcall() for the Rust pseudo-device, appended to fs/coda/upcall.c in place of its
 * own queueing, signal and timeout code (which lives in coda_psdev.ko's engine now).
 */
static int coda_upcall(struct venus_comm *vcp, int inSize, int *outSize,
		       union inputArgs *buffer)
{
	int error = coda_psdev_upcall(vcp - coda_comms, buffer, inSize, outSize);

	if (error)
		return error;
	/*
	 * An asynchronous upcall: the driver queued a copy, and the caller frees the buffer
	 * only when the upcall failed (it expects psdev.c to free it once Venus read it).
	 */
	if (!outSize) {
		kvfree(buffer);
		return 0;
	}
	/* Venus's errors are positive, the kernel's negative: as Linux's coda_upcall. */
	return -((union outputArgs *)buffer)->oh.result;
}
