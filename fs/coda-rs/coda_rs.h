/* SPDX-License-Identifier: GPL-2.0 */
/* The entry points coda_psdev.ko (Rust) exports to the Coda file system. */
#ifndef _CODA_RS_H
#define _CODA_RS_H

int coda_psdev_upcall(int index, void *buf, int in_size, int *out_size);
int coda_psdev_index(dev_t rdev);
bool coda_psdev_venus_present(int index);
void coda_psdev_set_downcall(int (*handler)(int minor, void *msg, int len));

#endif
