// Package interop tests the splunk_hec sink of package log/sink against
// the Splunk HEC receiver of the OpenTelemetry Collector contrib
// (splunkhecreceiver, with its ackextension for indexer acknowledgement
// and bearertokenauthextension checking "Authorization: Splunk TOKEN"),
// run in-process as a production HEC implementation. It is a separate
// module so the Collector's dependencies stay out of agentlog's go.mod;
// "make interop" runs it.
package interop
