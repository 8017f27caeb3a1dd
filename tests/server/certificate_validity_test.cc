// CheckCertificateValidity at fixed times (no clock), and
// ReadCertificateValidity on what is not a certificate. Real certificates are
// read end to end by server_tls_test.
#include "server/certificate_validity.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fer {
namespace {

using ::testing::HasSubstr;

absl::Time Day(int year, int month, int day) {
  return absl::FromCivil(absl::CivilDay(year, month, day), absl::UTCTimeZone());
}

// A leaf valid in 2030 and a CA valid 2029..2031.
std::vector<CertificateValidity> Chain() {
  return {{"/CN=localhost", Day(2030, 1, 1), Day(2031, 1, 1)},
          {"/CN=fer test ca", Day(2029, 1, 1), Day(2032, 1, 1)}};
}

TEST(CertificateValidityTest, InsideItsValidityFarFromItsEndIsOkWithoutWarning) {
  std::string warning = "stale";
  EXPECT_TRUE(
      CheckCertificateValidity(Chain(), Day(2030, 6, 1), kCertificateExpiryWarning, &warning).ok());
  EXPECT_EQ(warning, "");
}

TEST(CertificateValidityTest, BeforeItsStartIsRefusedWithTheDate) {
  absl::Status status =
      CheckCertificateValidity(Chain(), Day(2029, 6, 1), kCertificateExpiryWarning, nullptr);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("certificate 1 of 2 (/CN=localhost) is not valid until "
                                          "2030-01-01 00:00:00 UTC"));
}

TEST(CertificateValidityTest, AfterItsEndIsRefusedWithTheDate) {
  absl::Status status =
      CheckCertificateValidity(Chain(), Day(2031, 1, 2), kCertificateExpiryWarning, nullptr);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(),
              HasSubstr("certificate 1 of 2 (/CN=localhost) expired at 2031-01-01 00:00:00 UTC"));
}

TEST(CertificateValidityTest, AnExpiredCaInTheChainIsRefusedToo) {
  std::vector<CertificateValidity> chain = Chain();
  chain[1].not_after = Day(2030, 3, 1);
  absl::Status status =
      CheckCertificateValidity(chain, Day(2030, 6, 1), kCertificateExpiryWarning, nullptr);
  EXPECT_THAT(status.message(), HasSubstr("certificate 2 of 2 (/CN=fer test ca) expired at"));
}

TEST(CertificateValidityTest, WithinAWeekOfItsEndWarnsWithTheTimeLeft) {
  std::string warning;
  const absl::Time now = Day(2031, 1, 1) - absl::Hours(50);
  EXPECT_TRUE(CheckCertificateValidity(Chain(), now, kCertificateExpiryWarning, &warning).ok());
  EXPECT_THAT(warning, HasSubstr("certificate 1 of 2 (/CN=localhost) expires at 2031-01-01 "
                                 "00:00:00 UTC, in 50h"));
  // Eight days before: no warning.
  EXPECT_TRUE(CheckCertificateValidity(Chain(), Day(2031, 1, 1) - absl::Hours(8 * 24),
                                       kCertificateExpiryWarning, &warning)
                  .ok());
  EXPECT_EQ(warning, "");
}

TEST(CertificateValidityTest, TextWithoutACertificateIsInvalidArgument) {
  for (const std::string pem :
       {std::string(""), std::string("hello"),
        std::string(
            "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")}) {
    SCOPED_TRACE(pem);
    EXPECT_EQ(ReadCertificateValidity(pem).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace fer
