#!/usr/bin/env python3
"""make_fixtures.py - build the topology fixtures in tests/topo/fixtures/.

Each fixture is a directory with
  root/   a sysfs (and /proc) tree as the Linux kernel lays it out: PCI
          devices under /sys/devices/pciDDDD:BB/... with vendor, device,
          class, numa_node, current_link_speed/width; /sys/bus/pci/devices
          symlinks; /sys/class/net, /sys/class/infiniband, /sys/bus/cxl,
          /sys/class/kfd, /sys/bus/ub where the hardware has them.
  topo.xml  the CPU side as hwloc XML (made by lstopo from a synthetic
          description), for SCOMM_TOPO_FILE.
Point scomm at one with SCOMM_SYSFS_ROOT=<fixture>/root and
SCOMM_TOPO_FILE=<fixture>/topo.xml (test_topo_fixtures.c does).

The expected values live in the tests, written down from the hardware
description below, not from scomm's output.

Usage: make_fixtures.py [OUTDIR]   (default: the fixtures dir beside this)
"""
import os
import shutil
import subprocess
import sys
import zlib


class Host:
    def __init__(self, out, name, hostname):
        self.dir = os.path.join(out, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.root = os.path.join(self.dir, "root")
        self.bus = {}  # domain -> next free bus number
        self.write("proc/sys/kernel/hostname", hostname)
        self.write("proc/sys/kernel/random/boot_id",
                   "%08x-0000-4000-8000-000000000000"
                   % zlib.crc32(name.encode()))
        os.makedirs(os.path.join(self.root, "sys/bus/pci/devices"))
        os.makedirs(os.path.join(self.root, "sys/class/net"))

    def write(self, rel, text):
        p = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text + "\n")

    def link(self, rel, target_rel):
        """symlink root/rel -> root/target_rel, relative."""
        p = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        t = os.path.relpath(os.path.join(self.root, target_rel),
                            os.path.dirname(p))
        os.symlink(t, p)

    def next_bus(self, domain):
        b = self.bus.get(domain, 1)
        self.bus[domain] = b + 1
        return b

    def pci(self, parent, bdf, vendor, device, cls, numa, gts="16.0",
            width=16):
        """A PCI function below parent (a sysfs dir rel to root)."""
        d = parent + "/" + bdf
        self.write(d + "/vendor", "0x%04x" % vendor)
        self.write(d + "/device", "0x%04x" % device)
        self.write(d + "/class", "0x%06x" % cls)
        self.write(d + "/numa_node", str(numa))
        self.write(d + "/current_link_speed", gts + " GT/s PCIe")
        self.write(d + "/current_link_width", str(width))
        self.link("sys/bus/pci/devices/" + bdf, d)
        return d

    def root_port(self, domain, dev, numa):
        rc = "sys/devices/pci0000:%02x" % domain
        bdf = "0000:%02x:%02x.0" % (domain, dev)
        return self.pci(rc, bdf, 0x8086, 0x347a, 0x060400, numa)

    def switch(self, port, domain, numa):
        """A PCIe switch below a root port: returns its upstream dir."""
        b = self.next_bus(domain) + domain
        return self.pci(port, "0000:%02x:00.0" % b, 0x1000, 0xc010,
                        0x060400, numa)

    def dev_below(self, parent, domain, vendor, device, cls, numa, **kw):
        b = self.next_bus(domain) + domain
        bdf = "0000:%02x:00.0" % b
        return bdf, self.pci(parent, bdf, vendor, device, cls, numa, **kw)

    def netdev(self, name, pcidir, speed_mbps, up=True):
        d = pcidir + "/net/" + name
        self.write(d + "/speed", str(speed_mbps))
        self.write(d + "/operstate", "up" if up else "down")
        self.write(d + "/type", "1")
        self.link(d + "/device", pcidir)
        self.link("sys/class/net/" + name, d)

    def virtual_netdev(self, name):
        d = "sys/devices/virtual/net/" + name
        self.write(d + "/operstate", "unknown")
        self.write(d + "/type", "772" if name == "lo" else "1")
        self.link("sys/class/net/" + name, d)

    def ibdev(self, name, pcidir, layer, rate, state="4: ACTIVE"):
        d = pcidir + "/infiniband/" + name
        self.write(d + "/ports/1/link_layer", layer)
        self.write(d + "/ports/1/rate", rate)
        self.write(d + "/ports/1/state", state)
        self.link(d + "/device", pcidir)
        self.link("sys/class/infiniband/" + name, d)

    def xml(self, synthetic):
        subprocess.run(["lstopo", "--input", synthetic, "--of", "xml",
                        "-f", os.path.join(self.dir, "topo.xml")],
                       check=True)


NUMA2 = ("pack:2 l3:1(size=33554432) numa:1(memory=137438953472) "
         "l2:8(size=1048576) l1d:1(size=49152) core:1 pu:2")
NUMA1 = ("pack:1 l3:1(size=16777216) numa:1(memory=68719476736) "
         "l2:8(size=1048576) l1d:1(size=32768) core:1 pu:2")


def dgx(out):
    """2 sockets; 4 PCIe switches, each with 2 A100 GPUs and one HDR
    InfiniBand HCA (mlx5_K, IPoIB ibK); 6 NVSwitches; a 1 GbE port."""
    h = Host(out, "dgx", "dgx-a100")
    for k in range(4):
        dom = 0x00 if k < 2 else 0x80
        numa = 0 if k < 2 else 1
        port = h.root_port(dom, 1 + k, numa)
        sw = h.switch(port, dom, numa)
        for g in range(2):
            h.dev_below(sw, dom, 0x10de, 0x20b0, 0x030200, numa)
        _, nic = h.dev_below(sw, dom, 0x15b3, 0x101b, 0x020700, numa)
        h.ibdev("mlx5_%d" % k, nic, "InfiniBand", "200 Gb/sec (4X HDR)")
        h.netdev("ib%d" % k, nic, 200000)
    port = h.root_port(0x00, 0x10, 0)
    for s in range(6):
        h.dev_below(port, 0x00, 0x10de, 0x1af1, 0x068000, 0)
    port = h.root_port(0x00, 0x1f, 0)
    _, eth = h.dev_below(port, 0x00, 0x8086, 0x15b9, 0x020000, 0,
                         gts="2.5", width=1)
    h.netdev("eno1", eth, 1000)
    h.virtual_netdev("lo")
    h.xml(NUMA2)


def ascend(out):
    """2 sockets; 8 Ascend 910B NPUs (HCCS), each beside its own 200 GbE
    RoCE port (hns_K / ethK) on one root port; a 10 GbE port."""
    h = Host(out, "ascend", "atlas-800")
    for k in range(8):
        dom = 0x00 if k < 4 else 0x80
        numa = 0 if k < 4 else 1
        port = h.root_port(dom, 1 + k, numa)
        sw = h.switch(port, dom, numa)
        h.dev_below(sw, dom, 0x19e5, 0xd802, 0x120000, numa)
        _, nic = h.dev_below(sw, dom, 0x19e5, 0xa222, 0x020000, numa)
        h.ibdev("hns_%d" % k, nic, "Ethernet", "200 Gb/sec (4X HDR)")
        h.netdev("eth%d" % k, nic, 200000)
    port = h.root_port(0x00, 0x1f, 0)
    _, eth = h.dev_below(port, 0x00, 0x19e5, 0x1822, 0x020000, 0)
    h.netdev("enp125s0f0", eth, 10000)
    h.virtual_netdev("lo")
    h.xml(NUMA2)
    return h


def tcp(out):
    """One socket, two Ethernet NICs: 25 GbE eth0 and 1 GbE eth1; no
    accelerator, no RDMA; lo and a veth that must not count."""
    h = Host(out, "tcp", "plain-host")
    port = h.root_port(0x00, 0x01, 0)
    _, e0 = h.dev_below(port, 0x00, 0x8086, 0x158b, 0x020000, 0, gts="8.0",
                        width=8)
    h.netdev("eth1", e0, 1000)  # names swapped on purpose: speed decides
    port = h.root_port(0x00, 0x02, 0)
    _, e1 = h.dev_below(port, 0x00, 0x8086, 0x158b, 0x020000, 0, gts="8.0",
                        width=8)
    h.netdev("eth0", e1, 25000)
    h.virtual_netdev("lo")
    h.virtual_netdev("veth0")
    h.xml(NUMA1)


def simple_accel(out, name, hostname, vendor, device, count, extra=None):
    h = Host(out, name, hostname)
    for k in range(count):
        port = h.root_port(0x00, 1 + k, 0)
        h.dev_below(port, 0x00, vendor, device, 0x120000, 0)
    port = h.root_port(0x00, 0x1f, 0)
    _, eth = h.dev_below(port, 0x00, 0x8086, 0x158b, 0x020000, 0)
    h.netdev("eth0", eth, 100000)
    if extra is not None:
        extra(h)
    h.xml(NUMA1)
    return h


def kfd_xgmi(h):
    for n in range(1, 5):
        for peer in range(1, 5):
            if peer == n:
                continue
            h.write("sys/class/kfd/kfd/topology/nodes/%d/io_links/%d/"
                    "properties" % (n, peer),
                    "type 11\nversion_major 0\nnode_from %d\nnode_to %d\n"
                    "weight 15" % (n, peer))


def cxl(h):
    port = h.root_port(0x00, 0x1e, 0)
    _, mem = h.dev_below(port, 0x00, 0x8086, 0x0d93, 0x050210, 0)
    d = mem + "/mem0"
    h.write(d + "/ram/size", "0x400000000")
    h.write(d + "/pmem/size", "0x0")
    h.write(d + "/numa_node", "-1")
    h.link("sys/bus/cxl/devices/mem0", d)
    h.write("sys/devices/platform/ACPI0017:00/root0/uevent", "")
    h.link("sys/bus/cxl/devices/root0",
           "sys/devices/platform/ACPI0017:00/root0")


def ub(h):
    h.write("sys/devices/ub/ub0/uevent", "")
    h.link("sys/bus/ub/devices/ub0", "sys/devices/ub/ub0")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here,
                                                             "fixtures")
    os.makedirs(out, exist_ok=True)
    dgx(out)
    ascend(out)
    tcp(out)
    simple_accel(out, "cambricon", "mlu-host", 0xcabc, 0x0370, 4)
    simple_accel(out, "hygon", "dcu-host", 0x1d94, 0x55b7, 4, kfd_xgmi)
    simple_accel(out, "kunlunxin", "xpu-host", 0x1d22, 0x3684, 8)
    simple_accel(out, "kunlunxin2", "xpu-pair", 0x1d22, 0x3684, 2)
    simple_accel(out, "ascend-ub", "ub-host", 0x19e5, 0xd803, 2, ub)
    simple_accel(out, "cxl", "cxl-host", 0x10de, 0x2330, 1, cxl)


if __name__ == "__main__":
    main()
