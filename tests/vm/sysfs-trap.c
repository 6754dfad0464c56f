/* sysfs-trap [--prefix P]... [--kill-at K | --hook-at K --run CMD] -- PROGRAM [ARG...]
 *
 * Runs PROGRAM under ptrace(2) and watches its "write points": every write(2), pwrite64(2),
 * writev(2), pwritev(2) or pwritev2(2) whose file descriptor names a file under one of the
 * prefixes (default /sys/). Each point is numbered from 1 and logged on standard error.
 *
 *   --kill-at K   kill PROGRAM with SIGKILL when it is about to make write point K (the write
 *                 is not made): a crash at a known place, with no chance to clean up.
 *   --hook-at K --run CMD
 *                 when PROGRAM is about to make write point K, stop it, run CMD with sh -c,
 *                 then let the write happen: something changes on the host at a known place.
 *
 * Exit status: with --kill-at, 0 when PROGRAM was killed there and 3 when it ended before
 * reaching point K; otherwise PROGRAM's own status (128+N when killed by signal N).
 * The number of points seen is printed last ("sysfs-trap: N write points").
 *
 * Built static for the test guest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PREFIXES 8

static const char *prefixes[MAX_PREFIXES];
static int nprefixes;

static void usage(void)
{
    fprintf(stderr, "usage: sysfs-trap [--prefix P]... [--kill-at K | --hook-at K --run CMD] "
                    "-- PROGRAM [ARG...]\n");
    exit(2);
}

static int is_write_syscall(unsigned long long nr)
{
    return nr == SYS_write || nr == SYS_pwrite64 || nr == SYS_writev || nr == SYS_pwritev ||
           nr == SYS_pwritev2;
}

/* The path of descriptor fd of thread tid when it lies under a watched prefix, else NULL. */
static const char *watched_path(pid_t tid, unsigned long long fd, char *buf, size_t size)
{
    char link[64];
    ssize_t n;
    int i;

    snprintf(link, sizeof link, "/proc/%d/fd/%llu", (int)tid, fd);
    n = readlink(link, buf, size - 1);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    for (i = 0; i < nprefixes; i++)
        if (strncmp(buf, prefixes[i], strlen(prefixes[i])) == 0)
            return buf;
    return NULL;
}

int main(int argc, char **argv)
{
    long kill_at = 0, hook_at = 0;
    const char *hook_cmd = NULL;
    long points = 0;
    int killed = 0, status = 0, main_status = -1, i;
    pid_t child;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc) {
            if (nprefixes == MAX_PREFIXES)
                usage();
            prefixes[nprefixes++] = argv[++i];
        } else if (strcmp(argv[i], "--kill-at") == 0 && i + 1 < argc) {
            kill_at = atol(argv[++i]);
        } else if (strcmp(argv[i], "--hook-at") == 0 && i + 1 < argc) {
            hook_at = atol(argv[++i]);
        } else if (strcmp(argv[i], "--run") == 0 && i + 1 < argc) {
            hook_cmd = argv[++i];
        } else {
            usage();
        }
    }
    if (i >= argc || (hook_at > 0) != (hook_cmd != NULL) || kill_at < 0 || hook_at < 0)
        usage();
    if (nprefixes == 0)
        prefixes[nprefixes++] = "/sys/";

    child = fork();
    if (child < 0) {
        perror("sysfs-trap: fork");
        return 2;
    }
    if (child == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0) {
            perror("sysfs-trap: PTRACE_TRACEME");
            _exit(127);
        }
        raise(SIGSTOP);
        execvp(argv[i], argv + i);
        perror("sysfs-trap: exec");
        _exit(127);
    }
    if (waitpid(child, &status, 0) < 0 || !WIFSTOPPED(status)) {
        fprintf(stderr, "sysfs-trap: the child did not stop\n");
        return 2;
    }
    if (ptrace(PTRACE_SETOPTIONS, child, NULL,
               (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL | PTRACE_O_TRACECLONE |
                              PTRACE_O_TRACEEXEC)) < 0) {
        perror("sysfs-trap: PTRACE_SETOPTIONS");
        return 2;
    }
    ptrace(PTRACE_SYSCALL, child, NULL, NULL);

    for (;;) {
        int sig, deliver = 0;
        pid_t tid = waitpid(-1, &status, __WALL);

        if (tid < 0) {
            if (errno == EINTR)
                continue;
            break; /* ECHILD: every traced thread is gone */
        }
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            if (tid == child)
                main_status = status;
            continue;
        }
        if (!WIFSTOPPED(status))
            continue;
        sig = WSTOPSIG(status);
        if (sig == (SIGTRAP | 0x80)) {
            struct __ptrace_syscall_info info;
            char path[4096];
            const char *p;

            memset(&info, 0, sizeof info);
            if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, (void *)sizeof info, &info) > 0 &&
                info.op == PTRACE_SYSCALL_INFO_ENTRY && is_write_syscall(info.entry.nr) &&
                (p = watched_path(tid, info.entry.args[0], path, sizeof path)) != NULL) {
                points++;
                fprintf(stderr, "sysfs-trap: write point %ld: %s\n", points, p);
                if (points == kill_at && !killed) {
                    fprintf(stderr, "sysfs-trap: killing pid %d (SIGKILL) before write point %ld\n",
                            (int)child, points);
                    kill(child, SIGKILL);
                    killed = 1;
                    continue; /* the killed threads are reaped by the loop */
                }
                if (points == hook_at) {
                    int rc;

                    fprintf(stderr, "sysfs-trap: running before write point %ld: %s\n", points,
                            hook_cmd);
                    rc = system(hook_cmd);
                    fprintf(stderr, "sysfs-trap: hook exited with status %d\n",
                            WIFEXITED(rc) ? WEXITSTATUS(rc) : 128);
                }
            }
        } else if (sig == SIGTRAP && (status >> 16) != 0) {
            /* a clone or exec event: nothing to deliver */
        } else if (sig == SIGSTOP) {
            /* the initial stop of a new thread */
        } else {
            deliver = sig;
        }
        ptrace(PTRACE_SYSCALL, tid, NULL, (void *)(long)deliver);
    }

    fprintf(stderr, "sysfs-trap: %ld write points\n", points);
    if (kill_at > 0)
        return killed ? 0 : 3;
    if (main_status < 0)
        return 2;
    if (WIFEXITED(main_status))
        return WEXITSTATUS(main_status);
    return 128 + WTERMSIG(main_status);
}
