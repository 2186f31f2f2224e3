/* A UDP answering machine for the network tests, built static so it runs
 * in the busybox rootfs (whose busybox has no UDP server applet) and in the
 * test VMs (which have no python):
 *   udp_echo PORT               answer each datagram with "pong:" + it
 *   udp_echo HOST PORT MESSAGE  send MESSAGE, print the answer (5 s at most) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

static int serve(int port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("udp_echo");
        return 1;
    }
    for (;;) {
        char in[512], out[600];
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        ssize_t n = recvfrom(fd, in, sizeof in - 1, 0, (struct sockaddr *)&peer, &len);
        if (n < 0)
            continue;
        in[n] = 0;
        int m = snprintf(out, sizeof out, "pong:%s", in);
        sendto(fd, out, m, 0, (struct sockaddr *)&peer, len);
    }
}

static int ask(const char *host, int port, const char *message) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval timeout = {.tv_sec = 5};
    if (fd < 0 || inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "udp_echo: bad address %s\n", host);
        return 2;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sendto(fd, message, strlen(message), 0, (struct sockaddr *)&addr, sizeof addr);
    char in[600];
    ssize_t n = recv(fd, in, sizeof in - 1, 0);
    if (n < 0) {
        perror("udp_echo: no answer");
        return 1;
    }
    in[n] = 0;
    puts(in);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2)
        return serve(atoi(argv[1]));
    if (argc == 4)
        return ask(argv[1], atoi(argv[2]), argv[3]);
    fprintf(stderr, "usage: udp_echo PORT | udp_echo HOST PORT MESSAGE\n");
    return 2;
}
