#!/usr/bin/env bash
# Seeds the corpora of the SIP fuzz targets: the RFC 4475 / RFC 5118 torture messages, a few
# realistic messages of a call and a registration, and the header values, URIs and digest
# parameters found in them; and of the recordings targets: small WAVs as a crash leaves them
# (wav_repair) and the prompt fixtures of recordings/tests/fixtures (prompt_decode). Run from
# anywhere; writes fuzz/corpus/<target>/ (gitignored).
set -euo pipefail
export LC_ALL=C # ${#var} counts bytes

cd "$(dirname "$0")"
fixtures=../sip/tests/fixtures
corpus=corpus
for target in sip_message sip_stream sip_uri sip_headers sip_digest wav_repair prompt_decode; do
    mkdir -p "$corpus/$target"
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# message NAME: a message with LF line ends on stdin, written to $work/NAME.msg with CRLF line
# ends and @LEN@ replaced by the length of the body.
message() {
    local crlf head body
    crlf=$(sed 's/$/\r/'; printf x)
    crlf=${crlf%x}
    head=${crlf%%$'\r\n\r\n'*}
    body=${crlf#*$'\r\n\r\n'}
    printf '%s\r\n\r\n%s' "${head//@LEN@/${#body}}" "$body" >"$work/$1.msg"
}

message invite <<'EOF'
INVITE sip:+4930123456@pbx.example.com;user=phone SIP/2.0
Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK-524287-1---a3f9c1d2e4b5;rport
Via: SIP/2.0/TCP 198.51.100.20:5060;branch=z9hG4bK8f2c.0b1d7e3a5c9f1e2d;received=198.51.100.20
Via: SIP/2.0/UDP 192.168.1.34:5062;rport=5062;received=192.0.2.55;branch=z9hG4bK.Hx7Pq2mQz
Record-Route: <sip:198.51.100.20;transport=tcp;lr;ftag=as6f1b2c3d>
Max-Forwards: 68
From: "Alice Example" <sip:alice@example.com>;tag=as6f1b2c3d
To: <sip:+4930123456@pbx.example.com;user=phone>
Call-ID: 3c26700a9b2f4e1c8d6e5f4a3b2c1d0e@192.168.1.34
CSeq: 102 INVITE
Contact: <sip:alice@192.0.2.55:5062;transport=udp;ob>;+sip.instance="<urn:uuid:5f1a3c2e-8b7d-4e6f-9a0b-1c2d3e4f5a6b>"
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY, MESSAGE
Supported: replaces, timer, 100rel, outbound, path
User-Agent: Zoiper rv2.10.19.6
Content-Type: application/sdp
Content-Length: @LEN@

v=0
o=alice 3904517216 3904517216 IN IP4 192.0.2.55
s=call
c=IN IP4 192.0.2.55
t=0 0
m=audio 40376 RTP/AVP 0 8 9 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
EOF

message ok <<'EOF'
SIP/2.0 200 OK
Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK-524287-1---a3f9c1d2e4b5;rport=5060
Via: SIP/2.0/TCP 198.51.100.20:5060;branch=z9hG4bK8f2c.0b1d7e3a5c9f1e2d;received=198.51.100.20
Via: SIP/2.0/UDP 192.168.1.34:5062;rport=5062;received=192.0.2.55;branch=z9hG4bK.Hx7Pq2mQz
Record-Route: <sip:198.51.100.20;transport=tcp;lr;ftag=as6f1b2c3d>
From: "Alice Example" <sip:alice@example.com>;tag=as6f1b2c3d
To: <sip:+4930123456@pbx.example.com;user=phone>;tag=8f4e2a1c
Call-ID: 3c26700a9b2f4e1c8d6e5f4a3b2c1d0e@192.168.1.34
CSeq: 102 INVITE
Contact: <sip:+4930123456@203.0.113.7:5060>
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS
Supported: replaces, timer
Server: masterz
Content-Type: application/sdp
Content-Length: @LEN@

v=0
o=masterz 1 1 IN IP4 203.0.113.7
s=-
c=IN IP4 203.0.113.7
t=0 0
m=audio 30000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=sendrecv
EOF

message register <<'EOF'
REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 192.168.1.34:5062;rport;branch=z9hG4bKPj4f8c2d1e
Max-Forwards: 70
From: <sip:alice@example.com>;tag=9b1e7c2a
To: <sip:alice@example.com>
Call-ID: 7d2e9f1a3b4c@192.168.1.34
CSeq: 1 REGISTER
Contact: <sip:alice@192.168.1.34:5062;ob>;expires=3600;q=0.9, "Desk" <sip:alice@[2001:db8::34]:5062>;expires=600
Expires: 3600
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS
User-Agent: baresip v3.10.1 (x86_64/linux)
Content-Length: 0

EOF

message unauthorized <<'EOF'
SIP/2.0 401 Unauthorized
Via: SIP/2.0/UDP 192.168.1.34:5062;rport=5062;received=192.0.2.55;branch=z9hG4bKPj4f8c2d1e
From: <sip:alice@example.com>;tag=9b1e7c2a
To: <sip:alice@example.com>;tag=a1b2c3
Call-ID: 7d2e9f1a3b4c@192.168.1.34
CSeq: 1 REGISTER
WWW-Authenticate: Digest realm="example.com", nonce="YWJjZGVmMTIzNDU2Nzg5MA==", opaque="5ccc069c403ebaf9f0171e9517f40e41", algorithm=SHA-256, qop="auth"
WWW-Authenticate: Digest realm="example.com", nonce="YWJjZGVmMTIzNDU2Nzg5MA==", opaque="5ccc069c403ebaf9f0171e9517f40e41", algorithm=MD5, qop="auth"
Content-Length: 0

EOF

message register-auth <<'EOF'
REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP 192.168.1.34:5062;rport;branch=z9hG4bKPj77aa3
Max-Forwards: 70
From: <sip:alice@example.com>;tag=9b1e7c2a
To: <sip:alice@example.com>
Call-ID: 7d2e9f1a3b4c@192.168.1.34
CSeq: 2 REGISTER
Contact: <sip:alice@192.168.1.34:5062;transport=tcp>
Authorization: Digest username="alice", realm="example.com", nonce="YWJjZGVmMTIzNDU2Nzg5MA==", uri="sip:example.com", response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001
Expires: 3600
Content-Length: 0

EOF

message compact-options <<'EOF'
OPTIONS sip:[2001:db8::1]:5060 SIP/2.0
v: SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bKoptions1
Max-Forwards : 70
f: sip:monitor@example.net;tag=42
t: sip:[2001:db8::1]:5060
i: opt-1@[2001:db8::9]
CSeq: 1 OPTIONS
k: path, outbound
Subject: a header
  folded over
	two lines
l: 0

EOF

message bye <<'EOF'
BYE sip:alice@192.0.2.55:5062;transport=udp SIP/2.0
Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK-bye-1
Route: <sip:198.51.100.20;transport=tcp;lr;ftag=as6f1b2c3d>
Max-Forwards: 70
From: <sip:+4930123456@pbx.example.com;user=phone>;tag=8f4e2a1c
To: "Alice Example" <sip:alice@example.com>;tag=as6f1b2c3d
Call-ID: 3c26700a9b2f4e1c8d6e5f4a3b2c1d0e@192.168.1.34
CSeq: 1 BYE
Reason: Q.850;cause=16;text="Normal call clearing"
Content-Length: 0

EOF

message trying <<'EOF'
SIP/2.0 100 Trying
Via: SIP/2.0/UDP 192.168.1.34:5062;rport=5062;received=192.0.2.55;branch=z9hG4bK.Hx7Pq2mQz
From: "Alice Example" <sip:alice@example.com>;tag=as6f1b2c3d
To: <sip:+4930123456@pbx.example.com;user=phone>
Call-ID: 3c26700a9b2f4e1c8d6e5f4a3b2c1d0e@192.168.1.34
CSeq: 102 INVITE
Content-Length: 0

EOF

cp "$fixtures"/rfc4475/*.dat "$fixtures"/rfc5118/*.dat "$work"/
all=("$work"/*.dat "$work"/*.msg)

# Whole messages, one per file.
for f in "${all[@]}"; do
    cp "$f" "$corpus/sip_message/$(basename "$f")"
done

# Streams: 9 bytes of size limit and piece sizes (see sip_stream.rs), then messages back to back
# with keep-alives between them.
prefixes=('\007\001\007\100\000\005\377\020\002' '\004\377\377\377\377\377\377\377\377'
    '\006\003\013\037\200\001\002\004\010')
i=0
for f in "${all[@]}"; do
    p=${prefixes[$((i % ${#prefixes[@]}))]}
    { printf "$p"; cat "$f"; } >"$corpus/sip_stream/$(basename "$f")"
    i=$((i + 1))
done
{
    printf "${prefixes[0]}"
    cat "$work/invite.msg"
    printf '\r\n\r\n'
    cat "$work/trying.msg" "$work/ok.msg"
    printf '\r\n'
    cat "$work/register.msg" "$work/unauthorized.msg" "$work/register-auth.msg" "$work/bye.msg"
} >"$corpus/sip_stream/call"
{
    printf "${prefixes[2]}"
    printf '\r\n\r\n\r\n'
    cat "$work/compact-options.msg" "$work/trying.msg"
    head -c 200 "$work/invite.msg"
} >"$corpus/sip_stream/keepalives-and-a-cut"

# Header values, prefixed with the selector byte of sip_headers.rs (digest values also on their
# own, for sip_digest).
n=0
for f in "${all[@]}"; do
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%$'\r'}
        [ -z "$line" ] && break # end of the header section
        case $line in *:*) ;; *) continue ;; esac
        name=${line%%:*}
        name=${name//[[:space:]]/}
        value=${line#*:}
        case ${name,,} in
        via | v) sel=0 ;;
        from | f) sel=1 ;;
        to | t) sel=2 ;;
        contact | m) sel=3 ;;
        route) sel=4 ;;
        record-route) sel=5 ;;
        cseq) sel=6 ;;
        call-id | i) sel=7 ;;
        max-forwards) sel=8 ;;
        expires) sel=9 ;;
        min-expires) sel=10 ;;
        content-length | l) sel=11 ;;
        authorization) sel=13 ;;
        proxy-authorization) sel=14 ;;
        www-authenticate) sel=15 ;;
        proxy-authenticate) sel=16 ;;
        content-type | c) sel=17 ;;
        content-disposition) sel=18 ;;
        event | o) sel=19 ;;
        subscription-state) sel=20 ;;
        p-asserted-identity) sel=21 ;;
        p-preferred-identity) sel=22 ;;
        refer-to | r) sel=23 ;;
        referred-by | b) sel=24 ;;
        replaces) sel=25 ;;
        session-expires | x) sel=26 ;;
        min-se) sel=27 ;;
        allow) sel=28 ;;
        allow-events | u) sel=29 ;;
        require) sel=30 ;;
        proxy-require) sel=31 ;;
        supported | k) sel=32 ;;
        unsupported) sel=33 ;;
        *) continue ;;
        esac
        if [ "$sel" -ge 13 ] && [ "$sel" -le 16 ]; then # digest values for sip_digest too
            n=$((n + 1))
            printf '%s' "${value# }" >"$corpus/sip_digest/$(basename "$f")-$n"
        fi
        n=$((n + 1))
        { printf "\\$(printf '%03o' "$sel")"; printf '%s' "$value"; } \
            >"$corpus/sip_headers/$(basename "$f")-$n"
        if [ "$sel" -le 5 ]; then # the name-addr grammar on its own (selector 12)
            { printf '\014'; printf '%s' "$value"; } >"$corpus/sip_headers/$(basename "$f")-$n-na"
        fi
    done <"$f"
done

# Values of headers the torture messages do not carry, as "selector value".
while read -r sel value; do
    n=$((n + 1))
    { printf "\\$(printf '%03o' "$sel")"; printf '%s' "$value"; } >"$corpus/sip_headers/hand-$n"
done <<'EOF'
17 multipart/mixed; boundary="unique-boundary-1"; charset=UTF-8
18 session;handling=optional
19 presence;id=7;x=y
19 refer.template1.template2
20 active;expires=3599
20 terminated;reason=noresource;retry-after=30
21 "Cullen Jennings" <sip:fluffy@cisco.com>, <tel:+14085264000>
22 <sip:+4930123456@example.com;user=phone>
23 <sip:dave@denver.example.org?Replaces=12345%40192.168.118.3%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994>
24 <sip:referrer@referrer.example>;cid="20398823.2UWQFN309shb3@referrer.example"
25 425928@bobster.example.org;to-tag=7743;from-tag=6472;early-only
26 1800;refresher=uas
27 90
28 INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY
29 presence, dialog, refer
30 100rel, timer
31 sec-agree
32 replaces, timer, 100rel, outbound, path, gruu
33 foo
EOF

# URIs: every Request-URI, and a few by hand.
for f in "${all[@]}"; do
    first=$(head -n 1 "$f" | tr -d '\r')
    case $first in SIP/*) continue ;; esac
    uri=${first#* }
    uri=${uri% *}
    printf '%s' "$uri" >"$corpus/sip_uri/$(basename "$f")"
done
i=0
while IFS= read -r uri; do
    i=$((i + 1))
    printf '%s' "$uri" >"$corpus/sip_uri/hand-$i"
done <<'EOF'
sip:alice@example.com
sips:alice:secret@example.com:5061;transport=tcp;lr?subject=project%20x&priority=urgent
sip:+4930123456@pbx.example.com;user=phone
sip:[2001:db8::10]:5070;maddr=[2001:db8::1]
sip:user;par=u%40example.net@example.com
SIP:%61lice@192.0.2.4:5060
tel:+1-201-555-0123;phone-context=example.com;ext=22
tel:7042;phone-context=+49301234
urn:uuid:5f1a3c2e-8b7d-4e6f-9a0b-1c2d3e4f5a6b
sip:198.51.100.20;transport=tcp;lr;ftag=as6f1b2c3d
sip:[::ffff:192.0.2.128]
EOF

# Digest values by hand: MD5, SHA-256, -sess, no qop (RFC 2069), stale, domain.
i=0
while IFS= read -r value; do
    i=$((i + 1))
    printf '%s' "$value" >"$corpus/sip_digest/hand-$i"
done <<'EOF'
Digest realm="example.com", nonce="abc123", algorithm=MD5, qop="auth"
Digest realm="example.com",nonce="n",opaque="o",algorithm=SHA-256-sess,qop="auth,auth-int",stale=TRUE,domain="sip:example.com sip:b.example.com"
Digest realm="a\"b\\c", nonce=YWJj/+==, stale=false
Digest username="bob", realm="biloxi.example.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:bob@biloxi.example.com", response="245f23415f11432b3434341c022", algorithm=MD5
Digest username="alice", realm="example.com", nonce="n", uri="sip:example.com", response="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", algorithm=SHA-256, cnonce="c", qop=auth, nc=0000000a
Digest username="alice", realm="example.com", nonce="n", uri="sip:example.com", response="6629FAE49393A05397450978507C4EF1", algorithm="MD5-sess", cnonce="c", nc=00000001, qop="auth"
EOF

# Recordings. le16/le32 N: N as little-endian printf escapes; pcm N: N bytes of a sawtooth.
le16() { printf '\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)); }
le32() { printf '%s%s' "$(le16 $(($1 & 65535)))" "$(le16 $(($1 >> 16 & 65535)))"; }
pcm() {
    local i esc=
    for ((i = 0; i < $1 / 2; i++)); do
        esc+=$(le16 $((i * 1500 & 65535)))
    done
    ((($1 % 2) == 0)) || esc+='\x7f'
    printf "$esc"
}
# fmt16 CHANNELS RATE: a 16-byte PCM fmt chunk, 16 bits per sample.
fmt16() {
    printf "fmt $(le32 16)$(le16 1)$(le16 "$1")$(le32 "$2")$(le32 $(($2 * 2 * $1)))$(le16 $((2 * $1)))$(le16 16)"
}
# wav RIFF_SIZE DATA_SIZE CHANNELS RATE BYTES: a canonical 44-byte header with the sizes given
# (a crash leaves stale ones), then BYTES bytes of audio.
wav() {
    printf "RIFF$(le32 "$1")WAVE"
    fmt16 "$3" "$4"
    printf "data$(le32 "$2")"
    pcm "$5"
}
r=$corpus/wav_repair
wav $((36 + 160)) 160 2 8000 160 >"$r/finished-stereo"
wav 36 0 2 8000 101 >"$r/crashed-before-checkpoint" # as StereoWav::new left it, a partial frame
wav $((36 + 80)) 80 2 8000 203 >"$r/crashed-after-checkpoint"
wav 36 0 2 8000 0 >"$r/header-only"
head -c 30 "$r/finished-stereo" >"$r/cut-in-header"
{ # Mono 16 kHz, finished, with a LIST chunk (odd size, padded) after the audio.
    printf "RIFF$(le32 $((4 + 24 + 8 + 120 + 8 + 18)))WAVE"
    fmt16 1 16000
    printf "data$(le32 120)"
    pcm 120
    printf "LIST$(le32 17)INFOISFT$(le32 5)hound\\x00"
} >"$r/trailing-list"
{ # WAVE_FORMAT_EXTENSIBLE mono 16 kHz, crashed.
    printf "RIFF$(le32 60)WAVEfmt $(le32 40)$(le16 65534)$(le16 1)$(le32 16000)$(le32 32000)"
    printf "$(le16 2)$(le16 16)$(le16 22)$(le16 16)$(le32 4)"
    printf '\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71'
    printf "data$(le32 0)"
    pcm 63
} >"$r/extensible-crashed"
{ # An odd-sized chunk before fmt (valid RIFF; hound skips no pad byte), crashed.
    printf "RIFF$(le32 $((4 + 12 + 24 + 8 + 16)))WAVEJUNK$(le32 3)abc\\x00"
    fmt16 2 8000
    printf "data$(le32 16)"
    pcm 90
} >"$r/junk-before-fmt"

# Prompts: byte 0 picks the hint (0 none, 1 wav, 2 mp3, 3 flac, 4 ogg), the file follows.
p=$corpus/prompt_decode
prompts=../recordings/tests/fixtures
for f in "flac 3" "mp3 2" "ogg 4"; do
    set -- $f
    { printf "\\x0$2"; cat "$prompts/tone600.$1"; } >"$p/tone600-$1"
    { printf '\x00'; cat "$prompts/tone600.$1"; } >"$p/tone600-$1-no-hint"
done
{ printf '\x01'; wav $((36 + 800)) 800 1 8000 800; } >"$p/wav-8k-mono"
{ printf '\x00'; wav $((36 + 1600)) 1600 2 16000 1600; } >"$p/wav-16k-stereo"
{ printf '\x01'; cat "$r/extensible-crashed"; } >"$p/wav-extensible"

for target in sip_message sip_stream sip_uri sip_headers sip_digest wav_repair prompt_decode; do
    echo "$target: $(find "$corpus/$target" -type f | wc -l) seeds"
done
