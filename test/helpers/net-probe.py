# Network probes run inside workspaces by the firewall tests (python3 only, no packages).
#   serve TCP UDP LOG                   TCP: answer the peer's address; UDP: echo it back and log "payload peer"
#   multi JSON                          run checks concurrently, print JSON results:
#       ["tcp", host, port]             -> "ok:<reply>" | "refused" | "timeout" | "err:<e>"
#       ["udp", host, port, token]      -> "ok:<reply>" | "timeout" | "err:<e>"
#       ["dns", name]                   -> "ok:<ip>" | "err:<e>"
#   spoofip SRC DST PORT TOKEN          raw IPv4/UDP datagram with a forged source address
#   spoofmac MAC DSTMAC SRC DST PORT TOKEN  Ethernet frame on eth0 with a forged source MAC
import json, os, socket, struct, sys, threading

def serve(tport, uport, log):
    def tcp():
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('0.0.0.0', tport)); s.listen(64)
        while True:
            c, a = s.accept()
            try: c.sendall((a[0] + '\n').encode())
            finally: c.close()
    threading.Thread(target=tcp, daemon=True).start()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', uport))
    while True:
        data, a = u.recvfrom(2048)
        with open(log, 'a') as f: f.write('%s %s\n' % (data.decode(errors='replace'), a[0]))
        u.sendto(a[0].encode(), a)

def check(c):
    try:
        if c[0] == 'tcp':
            s = socket.socket(); s.settimeout(1.5)
            try:
                s.connect((c[1], int(c[2]))); return 'ok:' + s.recv(100).decode().strip()
            except ConnectionRefusedError: return 'refused'
            except socket.timeout: return 'timeout'
            finally: s.close()
        if c[0] == 'udp':
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.5)
            try:
                s.sendto(c[3].encode(), (c[1], int(c[2]))); return 'ok:' + s.recv(100).decode().strip()
            except socket.timeout: return 'timeout'
            finally: s.close()
        if c[0] == 'dns':
            return 'ok:' + socket.gethostbyname(c[1])
    except Exception as e:
        return 'err:%s' % e

def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff

def ip_udp(src, dst, port, payload):
    udp = struct.pack('!HHHH', 40000, port, 8 + len(payload), 0) + payload
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 17, len(udp))
    udp = udp[:6] + struct.pack('!H', csum(ph + udp)) + udp[8:]
    hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack('!H', csum(hdr)) + hdr[12:]
    return hdr + udp

cmd = sys.argv[1]
if cmd == 'serve':
    if os.fork() == 0:
        os.setsid()
        fd = os.open('/dev/null', os.O_RDWR)
        for i in (0, 1, 2): os.dup2(fd, i)
        serve(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    print('serving')
elif cmd == 'multi':
    checks = json.loads(sys.argv[2]); out = [None] * len(checks)
    def run(i): out[i] = check(checks[i])
    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(checks))]
    for t in ts: t.start()
    for t in ts: t.join()
    print(json.dumps(out))
elif cmd == 'spoofip':
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.sendto(ip_udp(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].encode()), (sys.argv[3], 0)); print('sent')
elif cmd == 'spoofmac':
    mac, dmac, src, dst, port, token = sys.argv[2:8]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0))
    frame = bytes.fromhex(dmac.replace(':', '')) + bytes.fromhex(mac.replace(':', '')) + b'\x08\x00' + ip_udp(src, dst, int(port), token.encode())
    s.send(frame); print('sent')
