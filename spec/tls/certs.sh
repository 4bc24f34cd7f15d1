#!/bin/sh
# spec/tls/certs.sh DIR — makes every certificate the TLS specs use, in DIR
# (created; openssl CLI only, OpenSSL 3.0 or later). Prints "ok" when done.
#
#   ca.pem ca.key              the test CA (ECDSA P-256)
#   localhost.pem .key         leaf for localhost + IP 127.0.0.1, signed by ca (ECDSA P-256)
#   localhost-rsa.pem .key     the same with an RSA-2048 key
#   chain.pem                  localhost.pem followed by ca.pem
#   wrong.pem .key             leaf for wrong.test only, signed by ca
#   expired.pem .key           leaf for localhost + 127.0.0.1 that expired in 2020, signed by ca
#   self.pem .key              self-signed leaf for localhost + 127.0.0.1
#   other-ca.pem, other.pem .key   another CA, and a localhost leaf it signed
#   client.pem .key            client certificate CN=tide-client, signed by ca
#   a.pem .key, b.pem .key     leaves for a.test and b.test, signed by ca
#   wild.pem .key              leaf for *.wild.test, signed by ca
#   certs/                     a CA directory (c_rehash layout) holding ca.pem
set -eu
d=$1
mkdir -p "$d"
cd "$d"

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# make_ca NAME CN
make_ca() {
  ec_key "$1.key"
  openssl req -x509 -new -key "$1.key" -subj "/O=tide tests/CN=$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.pem"
}

# leaf NAME CN SAN EKU CA [KEYTYPE]
leaf() {
  if [ "${6:-ec}" = rsa ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key" 2>/dev/null
  else
    ec_key "$1.key"
  fi
  openssl req -new -key "$1.key" -subj "/O=tide tests/CN=$2" -out "$1.csr"
  cat >"$1.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$4
subjectAltName=$3
EXT
  openssl x509 -req -in "$1.csr" -CA "$5.pem" -CAkey "$5.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days 825 -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr"
}

make_ca ca "tide test CA"
make_ca other-ca "tide other CA"
leaf localhost localhost "DNS:localhost,IP:127.0.0.1" serverAuth ca
leaf localhost-rsa localhost "DNS:localhost,IP:127.0.0.1" serverAuth ca rsa
leaf wrong wrong.test "DNS:wrong.test" serverAuth ca
leaf other localhost "DNS:localhost,IP:127.0.0.1" serverAuth other-ca
leaf client tide-client "DNS:tide-client" clientAuth ca
leaf a a.test "DNS:a.test" serverAuth ca
leaf b b.test "DNS:b.test" serverAuth ca
leaf wild "*.wild.test" "DNS:*.wild.test" serverAuth ca
cat localhost.pem ca.pem >chain.pem

# An expired leaf: `openssl ca` takes explicit start and end dates.
mkdir -p ca.db
: >ca.db/index.txt
echo 1000 >ca.db/serial
cat >ca.cnf <<CNF
[ca]
default_ca = test
[test]
database = ca.db/index.txt
serial = ca.db/serial
new_certs_dir = ca.db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
O = optional
CN = supplied
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
CNF
ec_key expired.key
openssl req -new -key expired.key -subj "/O=tide tests/CN=localhost" -out expired.csr
openssl ca -batch -notext -config ca.cnf -extensions ext -startdate 20200101000000Z \
  -enddate 20200201000000Z -in expired.csr -out expired.pem 2>/dev/null
rm -f expired.csr

# A self-signed leaf (not a CA).
ec_key self.key
openssl req -x509 -new -key self.key -subj "/O=tide tests/CN=localhost" -days 825 -sha256 \
  -addext "basicConstraints=critical,CA:FALSE" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out self.pem

# A CA directory: files named by subject hash.
mkdir -p certs
cp ca.pem "certs/$(openssl x509 -noout -subject_hash -in ca.pem).0"
echo ok
