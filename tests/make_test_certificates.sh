#!/usr/bin/env bash
# Writes throw-away TLS material for the tests into DIR with openssl:
#   ca.pem/.key         a CA
#   server.pem/.key     a server certificate for localhost, 127.0.0.1 and ::1, signed by ca
#   client.pem/.key     a client certificate (CN fer-client), signed by ca
#   other_ca.pem/.key   a second CA that signed nothing here
#   rogue.pem/.key      a client certificate signed by other_ca
# and server certificates (as server.pem, signed by ca) outside or near the
# end of their validity, which fer-server refuses or warns about:
#   expired.pem/.key    valid 2020-01-01 to 2020-01-02 only
#   not_yet_valid.pem/.key  valid from 2099-01-01 only
#   expiring.pem/.key   valid for 2 days from now
# The others are valid for 30 days, past fer-server's 7-day expiry warning.
# Usage: tests/make_test_certificates.sh DIR
set -euo pipefail
cd "$1"
cat > server.ext <<EXT
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
EXT
for ca in ca other_ca; do
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=fer test ${ca}" \
    -keyout "${ca}.key" -out "${ca}.pem" 2>/dev/null
done
# sign NAME CN CA [EXTFILE [DAYS]]
sign() {
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days "${5:-30}" \
    ${4:+-extfile "$4"} -out "$1.pem" 2>/dev/null
  rm "$1.csr"
}
sign server localhost ca server.ext
sign client fer-client ca
sign rogue fer-client other_ca
sign expiring localhost ca server.ext 2

# Fixed validity dates need `openssl ca` (OpenSSL 3.0's x509 -req has only
# -days), which keeps a small database; it lives in a scratch folder.
mkdir -p dated_ca
cat > dated_ca/ca.cnf <<CNF
[ ca ]
default_ca = dated
[ dated ]
database = dated_ca/index.txt
new_certs_dir = dated_ca
serial = dated_ca/serial
default_md = sha256
policy = any_name
unique_subject = no
[ any_name ]
commonName = supplied
CNF
: > dated_ca/index.txt
echo 1000 > dated_ca/serial
# dated NAME START END (YYYYMMDDHHMMSSZ)
dated() {
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$1.key" -out "$1.csr" \
    2>/dev/null
  openssl ca -batch -notext -config dated_ca/ca.cnf -cert ca.pem -keyfile ca.key -in "$1.csr" \
    -startdate "$2" -enddate "$3" -extfile server.ext -out "$1.pem" 2>/dev/null
  rm "$1.csr"
}
dated expired 20200101000000Z 20200102000000Z
dated not_yet_valid 20990101000000Z 20991231000000Z
rm -r dated_ca
