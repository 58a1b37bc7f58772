// Host socket calls behind esp-hil's ClientContext (include/ClientContext.h). Kept out of
// line, in their own translation unit, because the host's socket headers and lwIP's headers
// (which every ClientContext user includes) declare the same names differently.
#ifndef ESP_HIL_CORE_SOCKET_H
#define ESP_HIL_CORE_SOCKET_H

#include <stddef.h>
#include <stdint.h>

namespace esp_hil_core {

// A connected non-blocking TCP socket to ip:port (ip in network byte order), or -1 when
// refused, unreachable or not connected within timeout_ms.
int sock_connect(uint32_t ip, uint16_t port, int timeout_ms);

// What recv() gave: bytes (> 0), kRecvFin (the peer's FIN), kRecvNone (nothing yet),
// kRecvError (a reset or another error: the connection is gone).
constexpr long kRecvFin = 0;
constexpr long kRecvNone = -1;
constexpr long kRecvError = -2;
long sock_recv(int fd, char* buf, size_t size);

// Send all of data, waiting up to timeout_ms for room each time the socket is full; the bytes
// sent. *broken is set when the connection failed.
size_t sock_send(int fd, const char* data, size_t size, int timeout_ms, bool* broken);

// Bytes written but not yet acknowledged by the peer.
size_t sock_unacked(int fd);
// Bytes written but not yet sent (the peer's window is full); SIZE_MAX when the socket
// cannot take more at the moment.
size_t sock_unsent(int fd);

void sock_set_nodelay(int fd, bool nodelay);
void sock_keepalive(int fd, uint16_t idle_sec, uint16_t intv_sec, uint8_t count);
// One end's address (network byte order) and port; zeros if unknown.
void sock_endpoint(int fd, bool remote, uint32_t* ip, uint16_t* port);
void sock_close(int fd);

long monotonic_ms();
void sleep_ms(int ms);

}  // namespace esp_hil_core

#endif  // ESP_HIL_CORE_SOCKET_H
