# A small capture with fragmented UDP datagrams (in order and out of order) among plain packets.
import struct
def csum(b):
    if len(b)%2: b+=b'\0'
    s=sum(struct.unpack('!%dH'%(len(b)//2),b)); s=(s>>16)+(s&0xffff); s+=s>>16
    return (~s)&0xffff
def ip(src,dst,proto,payload,ident,mf=0,off=0):
    h=struct.pack('!BBHHHBBH4s4s',0x45,0,20+len(payload),ident,(mf<<13)|(off//8),64,proto,0,bytes(src),bytes(dst))
    h=h[:10]+struct.pack('!H',csum(h))+h[12:]
    return h+payload
def eth(p, s=b'\x02\0\0\0\0\x01', d=b'\x02\0\0\0\0\x02'): return d+s+b'\x08\x00'+p
def udp(sp,dp,data): return struct.pack('!HHHH',sp,dp,8+len(data),0)+data
A=[10,0,0,1]; B=[10,0,0,2]; C=[10,0,0,3]
pk=[]; t=1700000000.0
def add(frame):
    global t; t+=0.01; pk.append((t,frame))
ident=100
for k in range(12):
    add(eth(ip(A,B,17,udp(40000+k,53,b'q'*30),ident))); ident+=1
    dgram=udp(53,40000+k,bytes([k])*2960)
    frags=[(0,dgram[0:1480],1),(1480,dgram[1480:2960],1),(2960,dgram[2960:],0)]
    if k%4==3: frags=[frags[2],frags[0],frags[1]]   # last fragment first: the first one completes
    for off,part,mf in frags:
        add(eth(ip(B,A,17,part,ident,mf,off),s=b'\x02\0\0\0\0\x02',d=b'\x02\0\0\0\0\x01'))
    ident+=1
    add(eth(ip(C,B,17,udp(5000,6000,b'x'*100),ident))); ident+=1
with open('frag.pcap','wb') as f:
    f.write(struct.pack('<IHHiIII',0xa1b2c3d4,2,4,0,0,65535,1))
    for ts,fr in pk:
        f.write(struct.pack('<IIII',int(ts),int(round((ts-int(ts))*1e6)),len(fr),len(fr))); f.write(fr)
print(len(pk),'packets')
