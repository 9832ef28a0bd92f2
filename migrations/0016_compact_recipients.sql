-- Custom SQL migration file, put your code below! --
-- The recipients summary in its compact form (src/delivery/summary.ts `StoredRecipient`): each entry an array by
-- position instead of an object with key names. Entries already arrays are kept as they are.
UPDATE notifications SET recipients = (
  SELECT json_group_object(j.key, CASE WHEN json_type(j.value) = 'object' THEN json_array(
      json_extract(j.value, '$.recipientType'), json_extract(j.value, '$.subscriptionId'),
      json_extract(j.value, '$.target'), json_extract(j.value, '$.status'), json_extract(j.value, '$.statusReason'),
      json_extract(j.value, '$.attempts'), json_extract(j.value, '$.lastErrorClass'),
      json_extract(j.value, '$.lastHttpStatus'), json_extract(j.value, '$.updatedAt'))
    ELSE json(j.value) END)
  FROM json_each(notifications.recipients) j)
WHERE recipients <> '{}';
