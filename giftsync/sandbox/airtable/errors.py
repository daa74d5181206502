"""Airtable's error bodies: ``{"error": {"type": ..., "message": ...}}`` (message optional)."""
from __future__ import annotations

from ..twin import TwinResponse, json_response

PERMISSIONS_MESSAGE = (
    "Invalid permissions, or the requested model was not found. Check that both your user and your "
    "token have the required permissions, and that the model names and/or ids are correct."
)
UNKNOWN_REQUEST_MESSAGE = "Invalid request: parameter validation failed. Check your request data."


class ApiError(Exception):
    def __init__(self, status: int, type_: str, message: str | None = None) -> None:
        super().__init__(f"{status} {type_}: {message}")
        self.status = status
        self.type = type_
        self.message = message

    def response(self) -> TwinResponse:
        error: dict = {"type": self.type}
        if self.message is not None:
            error["message"] = self.message
        return json_response(self.status, {"error": error})


def invalid_request(message: str = UNKNOWN_REQUEST_MESSAGE) -> ApiError:
    return ApiError(422, "INVALID_REQUEST_UNKNOWN", message)


def not_permitted() -> ApiError:
    return ApiError(403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", PERMISSIONS_MESSAGE)


def unknown_field(name: str) -> ApiError:
    return ApiError(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')


def bad_value(field_name: str) -> ApiError:
    return ApiError(422, "INVALID_VALUE_FOR_COLUMN", f'Field "{field_name}" cannot accept the provided value')


def computed(field_name: str) -> ApiError:
    return ApiError(422, "INVALID_VALUE_FOR_COLUMN",
                    f'Field "{field_name}" cannot accept a value because the field is computed')


def row_missing(record_id: str) -> ApiError:
    return ApiError(422, "ROW_DOES_NOT_EXIST", f"Record ID {record_id} does not exist in this table")


def record_not_found() -> ApiError:
    return ApiError(404, "MODEL_ID_NOT_FOUND", "Record not found")
