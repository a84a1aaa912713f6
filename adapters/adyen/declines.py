"""Adyen refusal reason codes (``refusalReasonCode``) in the normalized vocabulary."""

from __future__ import annotations

from adapters.declines import DeclineCode as C

#: https://docs.adyen.com/development-resources/refusal-reasons
DECLINES: dict[str, C] = {
    "2": C.GENERIC,  # Refused
    "3": C.DO_NOT_HONOR,  # Referral
    "4": C.PROCESSING_ERROR,  # Acquirer Error
    "5": C.RESTRICTED_CARD,  # Blocked Card
    "6": C.EXPIRED_CARD,
    "7": C.GENERIC,  # Invalid Amount
    "8": C.INVALID_CARD,  # Invalid Card Number
    "9": C.ISSUER_UNAVAILABLE,
    "10": C.NOT_PERMITTED,  # Not supported
    "11": C.AUTHENTICATION_FAILED,  # 3D Not Authenticated
    "12": C.INSUFFICIENT_FUNDS,  # Not enough balance
    "14": C.FRAUD_SUSPECTED,  # Acquirer Fraud
    "15": C.CANCELLED,
    "16": C.CANCELLED,  # Shopper Cancelled
    "17": C.INVALID_CARD,  # Invalid Pin
    "18": C.INVALID_CARD,  # Pin tries exceeded
    "19": C.INVALID_CARD,  # Pin validation not possible
    "20": C.FRAUD_SUSPECTED,  # FRAUD
    "21": C.PROCESSING_ERROR,  # Not Submitted
    "22": C.FRAUD_SUSPECTED,  # FRAUD-CANCELLED
    "23": C.NOT_PERMITTED,  # Transaction Not Permitted
    "24": C.INCORRECT_CVC,  # CVC Declined
    "25": C.RESTRICTED_CARD,  # Restricted Card
    "26": C.DO_NOT_HONOR,  # Revocation Of Auth
    "27": C.DO_NOT_HONOR,  # Declined Non Generic
    "28": C.LIMIT_EXCEEDED,  # Withdrawal amount exceeded
    "29": C.LIMIT_EXCEEDED,  # Withdrawal count exceeded
    "31": C.FRAUD_SUSPECTED,  # Issuer Suspected Fraud
    "32": C.INVALID_CARD,  # AVS Declined
    "33": C.INVALID_CARD,  # Card requires online pin
    "34": C.INVALID_CARD,  # No checking account available on Card
    "35": C.INVALID_CARD,  # No savings account available on Card
    "36": C.AUTHENTICATION_REQUIRED,  # Mobile pin required
    "37": C.CANCELLED,  # Contactless fallback
    "38": C.AUTHENTICATION_REQUIRED,  # Authentication required
    "39": C.AUTHENTICATION_FAILED,  # RReq not received from DS
    "40": C.CANCELLED,  # Current AID is in Penalty Box
    "41": C.AUTHENTICATION_REQUIRED,  # CVM Required Restart Payment
    "42": C.PROCESSING_ERROR,  # 3DS Authentication Error
    "46": C.TRY_AGAIN_LATER,  # Transaction blocked by Adyen to prevent excessive retry fees
    "Refused": C.GENERIC,
    "Cancelled": C.CANCELLED,
    "Error": C.PROCESSING_ERROR,
}
