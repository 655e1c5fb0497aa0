/* Out-of-line copies of DPDK's static-inline hot-path functions and macros, so
 * Rust can call them. Each is a one-line forward; the compiler inlines the body. */
#ifndef CHAINROUTE_DPDK_SHIM_H
#define CHAINROUTE_DPDK_SHIM_H
#include <stdint.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>

int shim_rte_errno(void);
unsigned shim_rte_lcore_id(void);
uint64_t shim_rte_rdtsc(void);
uint16_t shim_rte_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t shim_rte_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp);
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void shim_rte_pktmbuf_free(struct rte_mbuf *m);
void shim_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count);
uint8_t *shim_rte_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t shim_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t shim_rte_mbuf_nb_segs(const struct rte_mbuf *m);
uint16_t shim_rte_mbuf_port(const struct rte_mbuf *m);
uint32_t shim_rte_mbuf_rss_hash(const struct rte_mbuf *m);
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
void shim_rte_prefetch0(const void *p);
unsigned shim_rte_mempool_avail_count(const struct rte_mempool *mp);
/* RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP: macro expressions bindgen cannot evaluate. */
uint64_t shim_rss_ip_udp(void);
#endif
