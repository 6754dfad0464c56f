/* Stress of the hostdev manager through the C API, as a daemon's threads would use it: 8
 * threads, each doing OPS operations (a prepare of its domain's devices, and, when it was
 * granted, a re-attach) on one simulated host whose domains overlap: domain t uses the NICs of
 * IOMMU groups 100+t and 100+(t+1)%8 (c-tests/stress/host.json), so neighbours contend. Two
 * runs: every thread through one shared manager, then one manager per thread on the same state
 * directory (the directory's lock does the serialising). One operation in 8 is an adoption
 * (update-active of devices still on their host driver, which logs a warning per device, then
 * re-attach) instead of a prepare. A log callback re-enters the manager on every message it
 * gets (warnings, and each refusal): it asks the thread's manager who owns a device and lists a
 * neighbour manager's devices.
 *
 * Checked: no deadlock (an alarm ends the process after WATCHDOG seconds), no device granted to
 * two domains at once (a claim table beside the manager, and the kernel's driver link), every
 * refusal is "in use", every re-attach succeeds, and at the end no device is held and every
 * NIC is back on igb (none left on vfio-pci without an owner). Prints the figures of each run.
 *
 * Usage: test-stress VIRTPCI_CLI HOST_JSON [OPS [WATCHDOG]] (defaults 1000 and 600; the
 * environment variable VIRTPCI_STRESS_OPS overrides OPS). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "virtpci.h"

#define THREADS 8
#define GROUPS 8
#define NICS (GROUPS * 2)

static VirtpciHost *host;
static char state[700];
static long ops_per_thread = 1000;

/* Which thread holds each NIC (-1: none), by the test's own account. */
static int claims[NICS];
static pthread_mutex_t claims_lock = PTHREAD_MUTEX_INITIALIZER;

/* The managers of the current run (all the same in the shared run). */
static VirtpciHostdevManager *_Atomic managers[THREADS];
static __thread int my_thread = -1;
static __thread int in_callback;

static atomic_long reentries;
static atomic_long callback_failures;

static void on_watchdog(int sig)
{
    static const char msg[] = "test-stress: watchdog expired: deadlock or livelock\n";
    (void)sig;
    if (write(2, msg, sizeof(msg) - 1) < 0)
        _exit(3);
    _exit(3);
}

static VirtpciPciAddress nic_address(int index)
{
    VirtpciPciAddress a = {0, (unsigned int)(index / 2 + 1), 0, (unsigned int)(index % 2)};
    return a;
}

/* The log callback: re-enter the manager from inside it, as a daemon's logger might. */
static void reentering_log(int level, const char *message, void *opaque)
{
    (void)level;
    (void)message;
    (void)opaque;
    if (in_callback || my_thread < 0)
        return;
    in_callback = 1;
    VirtpciPciAddress a = nic_address(my_thread * 2);
    char *drv = NULL, *dom = NULL;
    if (virtpci_hostdev_get_owner(managers[my_thread], &a, &drv, &dom) < 0)
        atomic_fetch_add(&callback_failures, 1);
    free(drv);
    free(dom);
    VirtpciHostdevStatus *list = NULL;
    size_t n = 0;
    if (virtpci_hostdev_list_devices(managers[(my_thread + 1) % THREADS], &list, &n) < 0)
        atomic_fetch_add(&callback_failures, 1);
    virtpci_hostdev_status_list_free(list, n);
    atomic_fetch_add(&reentries, 1);
    in_callback = 0;
}

struct worker {
    int t;
    int own_manager;
    long prepared, adopted, refused, failures, doubles;
};

static void report(struct worker *w, const char *what)
{
    w->failures++;
    if (w->failures <= 5)
        fprintf(stderr, "thread %d: %s: %s (code %d)\n", w->t, what,
                virtpci_last_error_message(), virtpci_last_error_code());
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    my_thread = w->t;
    if (w->own_manager) {
        managers[w->t] = virtpci_hostdev_manager_new(host, state);
        if (!managers[w->t]) {
            report(w, "manager_new");
            return NULL;
        }
    }
    VirtpciHostdevManager *mgr = managers[w->t];
    char dom[16];
    snprintf(dom, sizeof(dom), "vm%d", w->t);
    int nics[4];
    VirtpciHostdev devs[4];
    for (int i = 0; i < 4; i++) {
        int group = (w->t + i / 2) % GROUPS;
        nics[i] = group * 2 + i % 2;
        memset(&devs[i], 0, sizeof(devs[i]));
        devs[i].source = nic_address(nics[i]);
        devs[i].managed = 1;
    }
    for (long op = 0; op < ops_per_thread; op++) {
        /* One operation in 8 adopts the devices where they are, as a restarted daemon does
         * for a running domain: update-active books them and logs a warning for each one not
         * on vfio-pci (all of them), then re-attach gives them back. */
        int adopt = op % 8 == 7;
        int rc = adopt ? virtpci_hostdev_update_active_pci_devices(mgr, "QEMU", dom, devs, 4)
                       : virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", dom, NULL, devs, 4, 0);
        if (rc < 0) {
            if (virtpci_last_error_code() == VIRTPCI_ERR_OPERATION_INVALID &&
                strstr(virtpci_last_error_message(), "is in use by driver QEMU, domain vm"))
                w->refused++;
            else
                report(w, adopt ? "update-active" : "prepare");
            continue;
        }
        if (adopt)
            w->adopted++;
        else
            w->prepared++;
        pthread_mutex_lock(&claims_lock);
        for (int i = 0; i < 4; i++) {
            if (claims[nics[i]] != -1) {
                w->doubles++;
                fprintf(stderr, "NIC %d granted to vm%d and vm%d\n", nics[i], claims[nics[i]],
                        w->t);
            }
            claims[nics[i]] = w->t;
        }
        pthread_mutex_unlock(&claims_lock);
        for (int i = 0; i < 4; i++) {
            char *drv = NULL;
            if (virtpci_host_get_driver(host, &devs[i].source, &drv) < 0 || !drv ||
                strcmp(drv, adopt ? "igb" : "vfio-pci") != 0)
                report(w, "granted NIC on the wrong driver");
            free(drv);
        }
        sched_yield();
        pthread_mutex_lock(&claims_lock);
        for (int i = 0; i < 4; i++)
            claims[nics[i]] = -1;
        pthread_mutex_unlock(&claims_lock);
        if (virtpci_hostdev_reattach_pci_devices(mgr, "QEMU", dom, devs, 4) < 0)
            report(w, "reattach");
    }
    /* The manager is freed by run() after the joins: other threads' callbacks use it. */
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* No device held, every NIC on igb. */
static void check_end_state(const char *run)
{
    VirtpciHostdevManager *fresh = virtpci_hostdev_manager_new(host, state);
    CHECK(fresh != NULL, "%s", virtpci_last_error_message());
    VirtpciHostdevStatus *list = NULL;
    size_t n = 99;
    CHECK(virtpci_hostdev_list_devices(fresh, &list, &n) == 0 && n == 0,
          "%s: %zu devices still held", run, n);
    virtpci_hostdev_status_list_free(list, n);
    virtpci_hostdev_manager_free(fresh);
    for (int i = 0; i < NICS; i++) {
        VirtpciPciAddress a = nic_address(i);
        char *drv = NULL;
        CHECK(virtpci_host_get_driver(host, &a, &drv) == 0 && drv && strcmp(drv, "igb") == 0,
              "%s: NIC %d on %s at the end", run, i, drv ? drv : "(no driver)");
        free(drv);
    }
}

static void run(const char *name, int own_managers)
{
    struct worker workers[THREADS];
    pthread_t threads[THREADS];
    VirtpciHostdevManager *shared = NULL;
    memset(workers, 0, sizeof(workers));
    for (int i = 0; i < NICS; i++)
        claims[i] = -1;
    if (!own_managers) {
        shared = virtpci_hostdev_manager_new(host, state);
        CHECK(shared != NULL, "%s", virtpci_last_error_message());
        if (!shared)
            return;
        for (int t = 0; t < THREADS; t++)
            managers[t] = shared;
    } else {
        /* Each thread makes its own; until then a callback may use the first one made. */
        VirtpciHostdevManager *first = virtpci_hostdev_manager_new(host, state);
        CHECK(first != NULL, "%s", virtpci_last_error_message());
        for (int t = 0; t < THREADS; t++)
            managers[t] = first;
        shared = first;
    }
    atomic_store(&reentries, 0);
    atomic_store(&callback_failures, 0);
    double start = now();
    for (int t = 0; t < THREADS; t++) {
        workers[t].t = t;
        workers[t].own_manager = own_managers;
        CHECK(pthread_create(&threads[t], NULL, worker_main, &workers[t]) == 0, "thread");
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    double elapsed = now() - start;
    long prepared = 0, adopted = 0, refused = 0, failures = 0, doubles = 0;
    for (int t = 0; t < THREADS; t++) {
        prepared += workers[t].prepared;
        adopted += workers[t].adopted;
        refused += workers[t].refused;
        failures += workers[t].failures;
        doubles += workers[t].doubles;
    }
    printf("%s: %d threads x %ld operations: %ld prepared and re-attached, %ld adopted "
           "(update-active) and re-attached, %ld refused (group in use), %ld callback "
           "re-entries, %ld failures, %ld double grants, %.2f s\n",
           name, THREADS, ops_per_thread, prepared, adopted, refused, atomic_load(&reentries),
           failures, doubles, elapsed);
    CHECK(prepared + adopted + refused == THREADS * ops_per_thread,
          "%s: every operation accounted", name);
    CHECK(prepared > 0 && adopted > 0, "%s: prepares and adoptions were granted", name);
    CHECK(failures == 0 && doubles == 0, "%s: %ld failures, %ld double grants", name, failures,
          doubles);
    CHECK(atomic_load(&callback_failures) == 0, "%s: calls from the callback failed", name);
    CHECK(refused == 0 || atomic_load(&reentries) > 0, "%s: the callback ran", name);
    if (own_managers)
        for (int t = 0; t < THREADS; t++)
            if (managers[t] != shared)
                virtpci_hostdev_manager_free(managers[t]);
    virtpci_hostdev_manager_free(shared);
    for (int t = 0; t < THREADS; t++)
        managers[t] = NULL;
    check_end_state(name);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s VIRTPCI_CLI HOST_JSON [OPS [WATCHDOG]]\n", argv[0]);
        return 2;
    }
    unsigned int watchdog = 600;
    if (argc > 3)
        ops_per_thread = atol(argv[3]);
    if (argc > 4)
        watchdog = (unsigned int)atoi(argv[4]);
    const char *env = getenv("VIRTPCI_STRESS_OPS");
    if (env && *env)
        ops_per_thread = atol(env);
    signal(SIGALRM, on_watchdog);
    alarm(watchdog);

    /* tmpfs when there is one, as /run and /sys are on a real host. */
    char base[64];
    snprintf(base, sizeof(base), "%s/virtpci-stress-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 2;
    }
    char tree[600], cmd[2048];
    snprintf(tree, sizeof(tree), "%s/tree", base);
    snprintf(state, sizeof(state), "%s/state", base);
    snprintf(cmd, sizeof(cmd), "'%s' host materialize '%s' '%s'", argv[1], argv[2], tree);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot materialize the host: %s\n", cmd);
        return 2;
    }
    host = virtpci_host_open_simulated(tree);
    CHECK(host != NULL, "%s", virtpci_last_error_message());
    if (host) {
        virtpci_set_log_callback(reentering_log, NULL);
        run("shared manager", 0);
        run("one manager per thread", 1);
        virtpci_set_log_callback(NULL, NULL);
    }
    virtpci_host_free(host);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", base);
    return check_exit_status("test-stress");
}
