/*
 * Resolves a name as a program linked against musl does, for tests/e2e/pods.sh:
 *
 *   musl_resolve NAME      getaddrinfo(NAME): A and AAAA asked together, the search path and
 *                          ndots from /etc/resolv.conf; prints each address on a line
 *   musl_resolve -r ADDR   getnameinfo(ADDR, NI_NAMEREQD): the PTR; prints the name
 *
 * Exits 0 with output, 2 when the resolver finds nothing (its error on stderr), 1 on misuse.
 * Built with `musl-gcc -static` (Debian's musl-tools).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static int reverse(const char *text)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char host[NI_MAXHOST];
    int rc;

    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET, text, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
        len = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ss.ss_family = AF_INET6;
        len = sizeof(struct sockaddr_in6);
    } else {
        fprintf(stderr, "not an address: %s\n", text);
        return 1;
    }
    rc = getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, NULL, 0, NI_NAMEREQD);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", text, gai_strerror(rc));
        return 2;
    }
    puts(host);
    return 0;
}

static int forward(const char *name)
{
    struct addrinfo hints, *res, *ai;
    char text[INET6_ADDRSTRLEN];
    int rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", name, gai_strerror(rc));
        return 2;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        const void *addr = ai->ai_family == AF_INET
            ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
            : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if (inet_ntop(ai->ai_family, addr, text, sizeof text) != NULL)
            puts(text);
    }
    freeaddrinfo(res);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "-r") == 0)
        return reverse(argv[2]);
    if (argc == 2)
        return forward(argv[1]);
    fprintf(stderr, "usage: musl_resolve NAME | musl_resolve -r ADDRESS\n");
    return 1;
}
